/**
 * Facts about processes, read from the process table.
 *
 * A pid alone is never trusted: pids are recycled, so a process's identity is
 * its pid together with its start time. Every "is it still there" question in
 * lockd goes through `isSameProcessAlive(pid, startTime)`.
 *
 * This module is used by the client too, so it imports only node built-ins.
 * Linux reads /proc directly (cheap, synchronous where useful); other POSIX
 * systems (macOS) ask `ps`. The `ps-list` package is deliberately not used:
 * it reports neither process group nor start time, which are the two facts we
 * need, so `ps -o ...` is both lighter and sufficient.
 *
 * Start times are opaque strings: compare them for equality only (or with
 * `compareStartTimes`, which knows both formats). On Linux it is field 22 of
 * /proc/<pid>/stat (clock ticks since boot); elsewhere it is `ps`'s `lstart`
 * (second resolution, whitespace-normalised).
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';

const IS_LINUX = process.platform === 'linux';
/** Windows has no `ps`: every `ps` question answers "unknown" there at once (jobs use process-tree-windows.ts). */
const NO_PS = process.platform === 'win32';

/** One process as seen in the process table. */
export interface ProcessEntry {
  pid: number;
  ppid: number;
  /** Process group id. */
  pgid: number;
  /** Opaque start time; pid + startTime is the process's identity. */
  startTime: string;
  /** One-letter state ('R', 'S', 'D', 'Z' zombie, 'X' dead, ...). */
  state: string;
}

/** The fields of /proc/<pid>/stat that lockd uses. */
export interface ProcStat extends ProcessEntry {
  /** Executable name as the kernel keeps it (at most 15 bytes, may hold spaces and ')'). */
  comm: string;
  /** Session id. */
  sid: number;
}

/** True for a pid value that can name exactly one process (never 0 or negative: those mean groups / broadcast to kill(2)). */
export function isValidPid(pid: unknown): pid is number {
  return typeof pid === 'number' && Number.isInteger(pid) && pid > 0;
}

/** A zombie ('Z') or dead ('X') process has exited: it only waits to be reaped. */
export function isExitedState(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x';
}

/**
 * Parse the text of /proc/<pid>/stat.
 *
 * The second field (comm) is wrapped in parentheses but may itself contain
 * spaces, '(' and ')' — so the fields after it start after the LAST ')' in the
 * text, and comm is everything between the first '(' and that last ')'.
 * Returns null for text that does not have the expected shape.
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open <= 0 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  const comm = text.slice(open + 1, close);
  // Fields 3.. (1-based, as in proc(5)) follow the ')' separated by single spaces.
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state), so field N is rest[N - 3]; starttime is field 22.
  if (rest.length < 20) return null;
  const state = rest[0]!;
  const ppid = Number(rest[1]);
  const pgid = Number(rest[2]);
  const sid = Number(rest[3]);
  const startTime = rest[19]!;
  if (!isValidPid(pid) || !Number.isInteger(ppid) || !Number.isInteger(pgid) || !Number.isInteger(sid)) return null;
  if (!/^\d+$/.test(startTime) || state.length !== 1) return null;
  return { pid, comm, state, ppid, pgid, sid, startTime };
}

/** Read and parse /proc/<pid>/stat (Linux). Null when the process does not exist (or /proc is unreadable). */
export function readProcStatSync(pid: number): ProcStat | null {
  if (!IS_LINUX || !isValidPid(pid)) return null;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** Async twin of `readProcStatSync`. */
export async function readProcStat(pid: number): Promise<ProcStat | null> {
  if (!IS_LINUX || !isValidPid(pid)) return null;
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// `ps` (non-Linux). LC_ALL=C keeps lstart in one fixed English format.

const PS_ENV = { ...process.env, LC_ALL: 'C', LANG: 'C' };

interface PsRow {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
  startTime: string;
}

/** Parse `ps -o pid= -o ppid= -o pgid= -o stat= -o lstart=` lines; lstart (last, with spaces) is whitespace-normalised. */
export function parsePsRows(text: string): PsRow[] {
  const rows: PsRow[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 5) continue;
    const [pid, ppid, pgid] = parts.slice(0, 3).map(Number) as [number, number, number];
    if (!isValidPid(pid) || !Number.isInteger(ppid) || !Number.isInteger(pgid)) continue;
    rows.push({ pid, ppid, pgid, state: parts[3]!.charAt(0), startTime: parts.slice(4).join(' ') });
  }
  return rows;
}

// One `-o` per column: a header after '=' may swallow the rest of its argument on some ps.
const PS_COLUMNS = ['-o', 'pid=', '-o', 'ppid=', '-o', 'pgid=', '-o', 'stat=', '-o', 'lstart='];

function psRowSync(pid: number): PsRow | null {
  if (NO_PS || !isValidPid(pid)) return null;
  try {
    const out = execFileSync('ps', [...PS_COLUMNS, '-p', String(pid)], {
      env: PS_ENV,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    });
    return parsePsRows(out).find((r) => r.pid === pid) ?? null;
  } catch {
    // ps exits 1 when the pid does not exist.
    return null;
  }
}

function psRun(args: string[]): Promise<string | null> {
  if (NO_PS) return Promise.resolve(null);
  return new Promise((resolve) => {
    execFile('ps', args, { env: PS_ENV, encoding: 'utf8', timeout: 10_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      // A non-zero exit with output still carries rows (ps exits 1 when some pid is missing).
      resolve(err && !stdout ? null : stdout);
    });
  });
}

// ---------------------------------------------------------------------------
// Identity

/** Start time of `pid` (zombies included: they are still that process), or null if there is no such process. */
export async function processStartTime(pid: number): Promise<string | null> {
  if (!isValidPid(pid)) return null;
  if (IS_LINUX) return (await readProcStat(pid))?.startTime ?? null;
  const out = await psRun([...PS_COLUMNS, '-p', String(pid)]);
  return out === null ? null : (parsePsRows(out).find((r) => r.pid === pid)?.startTime ?? null);
}

/**
 * Synchronous start time. Called right after spawn, before returning to the
 * event loop, it cannot miss the child: node reaps children only from the event
 * loop, so an already-exited child is still a zombie with a readable start time.
 */
export function processStartTimeSync(pid: number): string | null {
  if (IS_LINUX) return readProcStatSync(pid)?.startTime ?? null;
  return psRowSync(pid)?.startTime ?? null;
}

/**
 * True only if `pid` exists, has not exited (a zombie counts as dead) and
 * started at `startTime` — a recycled pid is a different process, not "alive".
 * Synchronous: one small file read on Linux, one `ps` run elsewhere.
 */
export function isSameProcessAlive(pid: number, startTime: string): boolean {
  if (!isValidPid(pid) || typeof startTime !== 'string' || startTime === '') return false;
  const row = IS_LINUX ? readProcStatSync(pid) : psRowSync(pid);
  return row !== null && !isExitedState(row.state) && row.startTime === startTime;
}

/**
 * Order two start times: negative if `a` started before `b`, 0 if same, positive if after.
 * Null when they cannot be compared (unparseable). Linux ticks compare exactly;
 * `ps` lstart only to the second.
 */
export function compareStartTimes(a: string, b: string): number | null {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const x = Date.parse(a);
  const y = Date.parse(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return null;
  return Math.sign(x - y);
}

// ---------------------------------------------------------------------------
// Ancestry

/** Parent pid of `pid` (0 for the init process / kernel threads' root), or null if there is no such process. */
export function parentPid(pid: number): number | null {
  if (IS_LINUX) return readProcStatSync(pid)?.ppid ?? null;
  return psRowSync(pid)?.ppid ?? null;
}

/** Bound on the ppid walk: a chain deeper than this is treated as "not a descendant" (the kernel has no such chains in practice). */
const MAX_ANCESTRY_DEPTH = 4096;

/**
 * True if `pid` is a (strict) descendant of `ancestorPid` by the ppid chain and
 * the ancestor is still the process that started at `ancestorStartTime`.
 * A process whose parent died has been reparented (to init or a subreaper), so
 * it is no longer a descendant of that parent — by design of the kernel.
 */
/** `pid` is the process `ancestorPid` (started at `ancestorStartTime`, so not a recycled pid) or one of its descendants. */
export function isSelfOrDescendantOf(pid: number, ancestorPid: number, ancestorStartTime: string): boolean {
  if (pid === ancestorPid) return isSameProcessAlive(pid, ancestorStartTime);
  return isDescendantOf(pid, ancestorPid, ancestorStartTime);
}

export function isDescendantOf(pid: number, ancestorPid: number, ancestorStartTime: string): boolean {
  if (!isValidPid(pid) || !isValidPid(ancestorPid) || pid === ancestorPid) return false;
  let current = pid;
  for (let depth = 0; depth < MAX_ANCESTRY_DEPTH; depth++) {
    const ppid = parentPid(current);
    if (ppid === null || !isValidPid(ppid)) return false;
    if (ppid === ancestorPid) return processStartTimeSync(ancestorPid) === ancestorStartTime;
    current = ppid;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Credentials (Linux only)

/** The words of one `Field:` line of /proc/<pid>/status (Linux), or null when the process or the line is missing. */
export function readStatusField(pid: number, field: string): string[] | null {
  if (!IS_LINUX || !isValidPid(pid)) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const prefix = `${field}:`;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  if (line === undefined) return null;
  return line
    .slice(prefix.length)
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '');
}

/**
 * Effective uid of `pid` (the one that governs permissions, as SO_PEERCRED
 * reports it), from the `Uid:` line of /proc/<pid>/status. Linux only; null
 * elsewhere or when the process does not exist.
 */
export function processUid(pid: number): number | null {
  const ids = readStatusField(pid, 'Uid');
  const euid = ids === null ? NaN : Number(ids[1]);
  return Number.isInteger(euid) ? euid : null;
}

/**
 * Group ids of `pid`: the effective gid first, then the supplementary groups
 * (`Groups:` line), without duplicates. Linux only; null elsewhere or when the
 * process does not exist.
 */
export function processGids(pid: number): number[] | null {
  const gids = readStatusField(pid, 'Gid');
  const groups = readStatusField(pid, 'Groups');
  const egid = gids === null ? NaN : Number(gids[1]);
  if (!Number.isInteger(egid) || groups === null) return null;
  const all = [egid, ...groups.map(Number).filter(Number.isInteger)];
  return [...new Set(all)];
}

// ---------------------------------------------------------------------------
// The whole table

/** Every process visible to us, zombies included (see `state`). */
export async function listProcesses(): Promise<ProcessEntry[]> {
  if (IS_LINUX) {
    const names = await readdir('/proc');
    const stats = await Promise.all(names.filter((n) => /^\d+$/.test(n)).map((n) => readProcStat(Number(n))));
    return stats.filter((s): s is ProcStat => s !== null).map(toEntry);
  }
  const out = await psRun(['-ax', ...PS_COLUMNS]);
  return out === null ? [] : parsePsRows(out);
}

/** Synchronous `listProcesses` for Linux (empty elsewhere); for callers that must not yield. */
export function listProcessesSync(): ProcessEntry[] {
  if (!IS_LINUX) return [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcessEntry[] = [];
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const s = readProcStatSync(Number(n));
    if (s !== null) out.push(toEntry(s));
  }
  return out;
}

function toEntry(s: ProcessEntry): ProcessEntry {
  return { pid: s.pid, ppid: s.ppid, pgid: s.pgid, startTime: s.startTime, state: s.state };
}

// ---------------------------------------------------------------------------
// Groups

/**
 * True while any process is in group `pgid`: `kill(-pgid, 0)` semantics
 * (ESRCH → false; EPERM → true, the group exists but is not ours to signal).
 *
 * Note: zombies keep a group "alive" until they are reaped — a group whose
 * members have all exited but not been waited for still answers true. Use the
 * process table (`listProcesses`, state 'Z') when that distinction matters.
 * pgid 1 and below are refused (false): kill(-1) would mean "every process".
 */
export function processGroupAlive(pgid: number): boolean {
  if (!isValidPid(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') return true;
    throw err;
  }
}
