/**
 * POSIX shell quoting for display and copy-paste: `command_line` in a run's
 * manifest must re-run the exact argv when pasted into sh/bash/zsh.
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
