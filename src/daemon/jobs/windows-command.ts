/**
 * How a job's argv becomes a Windows process, done by lockd rather than left to execa's cross-spawn, for two things
 * a Windows user expects and cross-spawn does not give:
 *
 *  - A command that is not found is `command_not_found` (exit 127), as on Linux. cross-spawn hands any name it cannot
 *    resolve to cmd.exe, which prints "not recognized" and exits 9009 (49 in Wine): a job that never started looked
 *    like a job that failed.
 *  - A .cmd/.bat script sees its arguments as typed at a prompt: `x.cmd 5 "two words"` gives %1=5, %2="two words".
 *    cross-spawn quotes every argument, so %1 was "5" and `exit /b %1` or `if %1==…` broke.
 *
 * Resolution follows cmd.exe's search: a name with a directory part is tried as given, then with each PATHEXT
 * extension; a bare name in the job's cwd first, then in each PATH entry. Node cannot start a script itself
 * (spawn of a .cmd/.bat without a shell is EINVAL since CVE-2024-27980), so scripts run as
 * `cmd.exe /d /s /c "<line>"` with the line built here and passed verbatim.
 */
import { existsSync, statSync } from 'node:fs';
import { extname, isAbsolute, join, win32 } from 'node:path';

export interface WindowsCommand {
  file: string;
  args: string[];
  /** True for the cmd.exe line of a script: libuv must pass it as built (windowsVerbatimArguments). */
  verbatim: boolean;
}

/** A value of a Windows environment block, whose names are case-insensitive. */
function envValue(env: Record<string, string | undefined>, name: string): string | undefined {
  const key = Object.keys(env).find((k) => k.toUpperCase() === name);
  return key === undefined ? undefined : env[key];
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The file `name` names, by cmd.exe's search rules; null when there is none. */
export function resolveWindowsCommand(name: string, cwd: string, env: Record<string, string | undefined>): string | null {
  const exts = (envValue(env, 'PATHEXT') || '.COM;.EXE;.BAT;.CMD').split(';').filter((e) => e.length > 0);
  const candidates = (base: string): string[] => (extname(base) !== '' ? [base, ...exts.map((e) => base + e)] : exts.map((e) => base + e));
  const hasDir = /[\\/]/.test(name) || /^[A-Za-z]:/.test(name);
  const dirs = hasDir ? [''] : [cwd, ...(envValue(env, 'PATH') || '').split(';').filter((d) => d.length > 0)];
  for (const dir of dirs) {
    const base = dir === '' ? (isAbsolute(name) || win32.isAbsolute(name) ? name : join(cwd, name)) : join(dir, name);
    for (const c of candidates(base)) if (existsSync(c) && isFile(c)) return c;
  }
  return null;
}

// cmd.exe's special characters: outside quotes each is escaped with ^ so that cmd passes it through literally.
const CMD_META = /([()\][%!^"`<>&|;, *?])/g;
// An argument of only these needs no quoting for cmd or for the program's own argument parsing.
const PLAIN = /^[A-Za-z0-9_\-+.:/\\@#~]+$/;
// Inside double quotes cmd takes every character literally except these (and the quote itself ends the quotes).
const UNSAFE_IN_QUOTES = /["%!\r\n]/;

/**
 * One argument on a `cmd /s /c` line that runs a script, so that the script sees it as if typed at a prompt:
 *  - plain words stay as typed (`5` is %1=5, not "5");
 *  - an argument with spaces or cmd's other special characters (& | < > ( ) ^ , ; =) but no quote, % or ! is put in
 *    double quotes, inside which cmd takes them literally (%1 is "a&b", as when typed);
 *  - one holding a quote, % or ! is quoted by the MSVCRT rules and every cmd metacharacter ^-escaped twice (once
 *    for the /c line, once for cmd's second parse of the script's %-expanded lines): the known recipe for batch
 *    files on Windows. Wine's cmd.exe does not do that second parse, so this last case is not proven under Wine
 *    (docs/windows.md).
 */
export function quoteForScript(arg: string): string {
  if (PLAIN.test(arg)) return arg;
  if (!UNSAFE_IN_QUOTES.test(arg)) return `"${arg}"`;
  let q = arg.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\*)$/, '$1$1');
  q = `"${q}"`;
  return q.replace(CMD_META, '^$1').replace(CMD_META, '^$1');
}

/** The process to start for argv on Windows, or null when argv[0] names no file (command_not_found). */
export function windowsCommand(file: string, args: readonly string[], cwd: string, env: Record<string, string | undefined>): WindowsCommand | null {
  const resolved = resolveWindowsCommand(file, cwd, env);
  if (resolved === null) return null;
  const ext = extname(resolved).toLowerCase();
  if (ext !== '.cmd' && ext !== '.bat') return { file: resolved, args: [...args], verbatim: false };
  const comspec = envValue(env, 'COMSPEC') || 'cmd.exe';
  // The script's path in plain quotes (cmd /s strips the outer pair of the whole line, not these).
  const line = [`"${resolved}"`, ...args.map(quoteForScript)].join(' ');
  return { file: comspec, args: ['/d', '/s', '/c', `"${line}"`], verbatim: true };
}
