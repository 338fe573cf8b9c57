/**
 * Colours for human output: only on a terminal, never when NO_COLOR is set (https://no-color.org: present and
 * not empty) or TERM=dumb. Everything else (pipes, files, CI logs, --json) gets plain text.
 */
export interface Style {
  readonly enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return stream.isTTY === true;
}

function sgr(on: boolean, open: number, close: number): (s: string) => string {
  return on ? (s) => (s === '' ? s : `\x1b[${open}m${s}\x1b[${close}m`) : (s) => s;
}

export function makeStyle(enabled: boolean): Style {
  return {
    enabled,
    bold: sgr(enabled, 1, 22),
    dim: sgr(enabled, 2, 22),
    red: sgr(enabled, 31, 39),
    green: sgr(enabled, 32, 39),
    yellow: sgr(enabled, 33, 39),
    cyan: sgr(enabled, 36, 39),
  };
}

/** The style for a stream (stdout for tables, stderr for notes). */
export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  return makeStyle(colorEnabled(stream, env));
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** Printed width of a string that may carry colour codes. */
export function visibleLength(s: string): number {
  return s.replace(ANSI, '').length;
}
