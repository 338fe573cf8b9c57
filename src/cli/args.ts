/** Argument helpers shared by the commands: util.parseArgs plus the few shapes it does not cover. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LockdError } from '../util/errors.js';
import { DURATION_GRAMMAR, parseDuration } from '../runs/units.js';

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** Options every command accepts. */
export const COMMON_OPTIONS = {
  socket: { type: 'string' },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionsConfig;

/**
 * Split `[options] [--] command args...`: options end at `--` or at the first word that is not an option, so
 * `lockd run --lock x make -j4` runs `make -j4` without needing `--`.
 */
export function splitCommand(args: string[], options: OptionsConfig): { optionArgs: string[]; command: string[] } {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return { optionArgs: args.slice(0, i), command: args.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') return { optionArgs: args.slice(0, i), command: args.slice(i) };
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0]!;
      if (!a.includes('=') && options[name]?.type === 'string') i++;
    } else if (a.length === 2) {
      const def = Object.values(options).find((o) => o.short === a[1]);
      if (def?.type === 'string') i++;
    }
  }
  return { optionArgs: args, command: [] };
}

export function parse<O extends OptionsConfig>(
  args: string[],
  options: O,
  allowPositionals = false,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: boolean; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (e) {
    throw new LockdError('usage', (e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

/**
 * A duration option in seconds, in lockd's one duration grammar (parseDuration: `90`, `10m`, `1h30m`);
 * `inf`/`infinity`/`none`/`forever` → null (forever) where allowed.
 */
export function parseSeconds(v: string, what: string, allowInfinite = true): number | null {
  const s = v.trim().toLowerCase();
  if (allowInfinite && (s === 'inf' || s === 'infinity' || s === 'none' || s === 'forever')) return null;
  try {
    return parseDuration(s, what) / 1000;
  } catch {
    throw new LockdError('usage', `${what} must be ${DURATION_GRAMMAR}${allowInfinite ? ", or 'inf'" : ''}, not ${JSON.stringify(v)}`);
  }
}

export function parseIntOption(v: string, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new LockdError('usage', `${what} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`);
  return n;
}

export function asArray(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}
