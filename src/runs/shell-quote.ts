/**
 * Quoting for display and copy-paste: `command_line` in a run's manifest must re-run the exact argv when pasted
 * into the host's shell: sh/bash/zsh on POSIX, and on Windows a command line that a program's C runtime (and
 * Node's, and CommandLineToArgvW) splits back into the same arguments.
 */

/** Arguments made only of these characters need no quoting in any POSIX shell. */
const SAFE_ARG_RE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quote one argument: bare when safe, else single quotes with `'` spelled `'\''`. */
export function shellQuoteArg(arg: string): string {
  if (SAFE_ARG_RE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Quote an argv into one POSIX shell command line. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map(shellQuoteArg).join(' ');
}

/**
 * Quote one argument as the Microsoft C runtime splits a command line: bare when it has no blank, quote or cmd.exe
 * operator (& | < > ^ ( ), which cmd would act on when the line is pasted); else in double quotes, a quote as \",
 * and backslashes doubled where they come before a quote (or the closing one). cmd still expands %NAME% inside
 * quotes: a line with one is exact for a program started without cmd, not when pasted at a cmd prompt.
 */
export function windowsQuoteArg(arg: string): string {
  if (arg !== '' && !/[\s"&|<>^()]/.test(arg)) return arg;
  let out = '"';
  let slashes = 0;
  for (const ch of arg) {
    if (ch === '\\') {
      slashes++;
      continue;
    }
    if (ch === '"') out += `${'\\'.repeat(slashes * 2 + 1)}"`;
    else out += `${'\\'.repeat(slashes)}${ch}`;
    slashes = 0;
  }
  return `${out}${'\\'.repeat(slashes * 2)}"`;
}

/** The run's command line as the host's shell takes it back (`command_line` in manifests, status, .meta files). */
export function commandLineOf(argv: readonly string[], platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? argv.map(windowsQuoteArg).join(' ') : shellQuote(argv);
}
