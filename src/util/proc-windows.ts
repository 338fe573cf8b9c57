/**
 * Windows' process table, as far as a Node program without a native addon can read it: (pid, parent pid) pairs from
 * `wmic process get ParentProcessId,ProcessId` (Wine has it; Windows 11 24H2 removed it by default), else from
 * PowerShell's `Get-CimInstance Win32_Process` (every supported Windows; not in Wine). Neither gives lockd a start time
 * it can trust without a second source, so this module offers pairs only; process-tree-windows.ts says how they are
 * used (only below a leader whose identity is held by its process handle) and what that cannot exclude.
 */
import { execFile } from 'node:child_process';

export interface WindowsProcess {
  pid: number;
  ppid: number;
}

/** Bound on one listing (wmic's first run in a fresh Wine prefix takes a few seconds). */
const LIST_TIMEOUT_MS = 15_000;

/** wmic writes UTF-16LE when its output is a pipe (Windows and Wine alike); plain text is accepted too. */
export function decodeToolOutput(buf: Buffer): string {
  const utf16 = buf.length >= 2 && ((buf[0] === 0xff && buf[1] === 0xfe) || (buf.length > 3 && buf[1] === 0 && buf[3] === 0));
  return (utf16 ? buf.toString('utf16le') : buf.toString('utf8')).replace(/^\uFEFF/, '');
}

/**
 * Parse a two-column listing whose header names ParentProcessId and ProcessId in either order (wmic orders columns
 * its own way, and Wine's wmic prints the header without a space: `ParentProcessIDProcessID`), or headerless
 * "pid ppid" lines (the PowerShell form below).
 */
export function parseProcessPairs(text: string): WindowsProcess[] {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  let pidCol = 0;
  let ppidCol = 1;
  const header = lines[0]?.toLowerCase() ?? '';
  const ppidAt = header.indexOf('parentprocessid');
  if (ppidAt >= 0) {
    const blanked = header.slice(0, ppidAt) + ' '.repeat('parentprocessid'.length) + header.slice(ppidAt + 'parentprocessid'.length);
    const pidAt = blanked.indexOf('processid');
    if (pidAt < 0) return [];
    pidCol = pidAt < ppidAt ? 0 : 1;
    ppidCol = 1 - pidCol;
    lines.shift();
  }
  const out: WindowsProcess[] = [];
  for (const line of lines) {
    const cols = line.split(/\s+/);
    if (cols.length !== 2) continue;
    const pid = Number(cols[pidCol]);
    const ppid = Number(cols[ppidCol]);
    if (Number.isInteger(pid) && pid > 0 && Number.isInteger(ppid) && ppid >= 0) out.push({ pid, ppid });
  }
  return out;
}

/** A listing is believed only if it shows this very process with its real parent: a misread table is never acted on. */
function plausible(rows: WindowsProcess[]): boolean {
  return rows.some((r) => r.pid === process.pid && r.ppid === process.ppid);
}

function run(file: string, args: string[]): Promise<Buffer | null> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'buffer', timeout: LIST_TIMEOUT_MS, windowsHide: true, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      resolve(err || stdout.length === 0 ? null : stdout);
    });
  });
}

const POWERSHELL_LIST = 'Get-CimInstance Win32_Process | ForEach-Object { "$($_.ProcessId) $($_.ParentProcessId)" }';

/** Every process's (pid, ppid), or null when neither tool answered. Windows only. */
export async function listWindowsProcesses(): Promise<WindowsProcess[] | null> {
  const wmic = await run('wmic', ['process', 'get', 'ParentProcessId,ProcessId']);
  if (wmic !== null) {
    const rows = parseProcessPairs(decodeToolOutput(wmic));
    if (plausible(rows)) return rows;
  }
  const ps = await run('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', POWERSHELL_LIST]);
  if (ps !== null) {
    const rows = parseProcessPairs(decodeToolOutput(ps));
    if (plausible(rows)) return rows;
  }
  return null;
}

/** `root`'s descendants by the parent links of `table`, deepest first (so each is ended while its parent still lives). */
export function descendantsDeepestFirst(root: number, table: readonly WindowsProcess[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of table) {
    if (p.pid === p.ppid) continue;
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const order: number[] = [];
  // Never this process, whatever the table says.
  const seen = new Set<number>([root, process.pid]);
  const walk = (pid: number): void => {
    for (const c of children.get(pid) ?? []) {
      if (seen.has(c)) continue;
      seen.add(c);
      walk(c);
      order.push(c);
    }
  };
  walk(root);
  return order;
}
