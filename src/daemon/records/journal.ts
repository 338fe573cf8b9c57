/**
 * The daemon's crash journal: an append-only JSON-lines file in the state dir recording every live run and hold,
 * so that a daemon started after a crash (kill -9, OOM) knows which process trees and locks the old one owned.
 * One concern (the journal's file: append, read, compact), over 400 lines for its tolerant reader.
 *
 * - Appends are one small write(2) each, never a rewrite, so adding runs stays O(1) however long history grows.
 *   The file is rewritten (to its live entries, atomically: temp file + rename) only at start-up and when it has
 *   grown past COMPACT_AT_BYTES — never on every change.
 * - Reading tolerates anything: a line that is not JSON, or JSON that is not a well-formed entry (a torn write, a
 *   bit flip, an editor accident), is skipped and counted. When any line was bad, or the file could not be read
 *   at all, the file is set aside as `journal.jsonl.corrupt-<time>` for a human to look at, and a fresh journal is
 *   written holding the good entries. Nothing here throws: a journal that cannot be written (full or read-only
 *   state dir) degrades to memory only and says so through `onError`; the locks keep working.
 * - No fsync per append: the journal protects against the daemon dying, not against the machine losing power
 *   (after a reboot no process a record names can be alive anyway). Compaction does fsync, because it replaces
 *   the only copy.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { isClusterKey } from '../locks/cluster-keys.js';
import { isAbsolute, join } from 'node:path';
import { errnoCode } from '../../util/errors.js';

export interface JournalLock {
  key: string;
  name: string;
  scope: 'local' | 'global' | 'cluster';
  mode: 'exclusive' | 'shared' | 'slots';
  slots?: number;
  fencing_token: number;
  /** For slots locks: the slot the run was given (a re-adopted run must keep it; see adopt.ts). */
  slot_index?: number;
}

/**
 * A lock as the journal records it for a run or a hold: what it is, plus its fencing token and slot, so a re-adopted
 * run (adopt.ts) or a restored hold (grant-again.ts) keeps both.
 */
export function journalLock(
  l: { key: string; name: string; scope: JournalLock['scope']; mode: JournalLock['mode']; slots?: number },
  fencingToken: number,
  slotIndex: number | null | undefined,
): JournalLock {
  return {
    key: l.key,
    name: l.name,
    scope: l.scope,
    mode: l.mode,
    ...(l.slots ? { slots: l.slots } : {}),
    fencing_token: fencingToken,
    ...(slotIndex !== null && slotIndex !== undefined ? { slot_index: slotIndex } : {}),
  };
}

export interface RunRecord {
  t: 'run';
  run_id: string;
  /** null while queued. */
  pid: number | null;
  pgid: number | null;
  start_time: string | null;
  locks: JournalLock[];
  client_pid: number;
  detach: boolean;
  dir: string;
  holder: string;
  user: string;
  uid: number | null;
  command_line: string;
  queued_at: number;
  started_at: number | null;
  log_path: string | null;
  parent: string | null;
  /** --supersede KEY: a newer run of the same uid and key with --cancel-running stops this one, also re-adopted. */
  supersede?: string;
}
export interface HoldRecord {
  t: 'hold';
  hold_id: string;
  locks: JournalLock[];
  holder: string;
  user: string;
  uid: number | null;
  since: number;
  ttl_ms: number | null;
  /** Epoch ms when the TTL runs out (refreshed by heartbeats); null = until released. */
  expires_at: number | null;
}
export type JournalEntry =
  | RunRecord
  | { t: 'run_end'; run_id: string }
  | HoldRecord
  | { t: 'hold_hb'; hold_id: string; expires_at: number | null }
  | { t: 'hold_end'; hold_id: string }
  /** The last fencing token handed out per lock, kept across compactions so tokens only ever grow. */
  | { t: 'fence'; key: string; token: number };

export interface JournalState {
  runs: Map<string, RunRecord>;
  holds: Map<string, HoldRecord>;
  fences: Map<string, number>;
  /** Lines that could not be used (not JSON, or not a well-formed entry), for the log. */
  badLines: number;
  /** Why the file could not be read at all (EACCES, EISDIR, EIO…); null when it was read (or did not exist). */
  unreadable: string | null;
  /** The file ended in the middle of a line (a torn last write, even one that happens to parse). */
  tornTail?: boolean;
}

/** What `Journal.open` found, for the daemon log. */
export interface JournalOpenReport {
  /** Where a journal with bad lines (or an unreadable one) was moved; null when it was clean. */
  setAsidePath: string | null;
  /** Why the journal cannot be written (it then lives in memory only); null when it can. */
  writeError: string | null;
}

export const JOURNAL_FILE = 'journal.jsonl';
const COMPACT_AT_BYTES = 4 * 1024 * 1024;
/** A line longer than this is not one of ours (the largest record is a run with 256 locks): skipped unparsed. */
const MAX_LINE_CHARS = 1024 * 1024;

// ---- entry validation: everything read back is checked field by field before reconcile trusts it ----

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown, max = 64 * 1024): v is string => typeof v === 'string' && v.length <= max;
const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256 && !/[/\0]/.test(v);
const isInt = (v: unknown, min = 0): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const orNull = <T>(v: unknown, check: (x: unknown) => x is T): v is T | null => v === null || check(v);

function isJournalLock(v: unknown): v is JournalLock {
  if (!isObj(v)) return false;
  return (
    isStr(v.key, 8192) &&
    // A lock file's path, or a cluster key (`etcd:<prefix>/...`, cluster locks and pool members): without the
    // latter, a run's record with its pid was dropped as malformed and reconcile took it for one never started.
    (isAbsolute(v.key) || isClusterKey(v.key)) &&
    isStr(v.name, 1024) &&
    (v.scope === 'local' || v.scope === 'global' || v.scope === 'cluster') &&
    (v.mode === 'exclusive' || v.mode === 'shared' || v.mode === 'slots') &&
    (v.mode === 'slots' ? isInt(v.slots, 1) : v.slots === undefined || isInt(v.slots, 1)) &&
    isInt(v.fencing_token) &&
    (v.slot_index === undefined || isInt(v.slot_index))
  );
}

function isLocks(v: unknown): v is JournalLock[] {
  return Array.isArray(v) && v.length <= 4096 && v.every(isJournalLock);
}

function isRunRecord(e: Obj): boolean {
  return (
    isId(e.run_id) &&
    orNull(e.pid, (x): x is number => isInt(x, 2)) &&
    orNull(e.pgid, (x): x is number => isInt(x, 1)) &&
    orNull(e.start_time, (x): x is string => isStr(x, 64) && x !== '') &&
    isLocks(e.locks) &&
    isInt(e.client_pid) &&
    typeof e.detach === 'boolean' &&
    isStr(e.dir, 8192) &&
    isAbsolute(e.dir) &&
    isStr(e.holder) &&
    isStr(e.user) &&
    orNull(e.uid, (x): x is number => isInt(x)) &&
    isStr(e.command_line, 1024 * 1024) &&
    isTime(e.queued_at) &&
    orNull(e.started_at, isTime) &&
    orNull(e.log_path, (x): x is string => isStr(x, 8192)) &&
    orNull(e.parent, isId) &&
    (e.supersede === undefined || (isStr(e.supersede, 256) && e.supersede !== ''))
  );
}

function isHoldRecord(e: Obj): boolean {
  return (
    isId(e.hold_id) &&
    isLocks(e.locks) &&
    (e.locks as unknown[]).length > 0 &&
    isStr(e.holder) &&
    isStr(e.user) &&
    orNull(e.uid, (x): x is number => isInt(x)) &&
    isTime(e.since) &&
    orNull(e.ttl_ms, (x): x is number => isInt(x, 1)) &&
    orNull(e.expires_at, isTime)
  );
}

/** The entry a line holds, or null when it is not a well-formed journal entry. Exported for tests. */
export function parseJournalLine(line: string): JournalEntry | null {
  if (line.length > MAX_LINE_CHARS) return null;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObj(v)) return null;
  switch (v.t) {
    case 'run':
      return isRunRecord(v) ? (v as unknown as RunRecord) : null;
    case 'hold':
      return isHoldRecord(v) ? (v as unknown as HoldRecord) : null;
    case 'run_end':
      return isId(v.run_id) ? { t: 'run_end', run_id: v.run_id } : null;
    case 'hold_end':
      return isId(v.hold_id) ? { t: 'hold_end', hold_id: v.hold_id } : null;
    case 'hold_hb':
      return isId(v.hold_id) && orNull(v.expires_at, isTime) ? { t: 'hold_hb', hold_id: v.hold_id, expires_at: v.expires_at } : null;
    case 'fence':
      return isStr(v.key, 8192) && isAbsolute(v.key) && isInt(v.token) ? { t: 'fence', key: v.key, token: v.token } : null;
    default:
      return null;
  }
}

function emptyState(): JournalState {
  return { runs: new Map(), holds: new Map(), fences: new Map(), badLines: 0, unreadable: null };
}

/** A file name stamp that sorts by time and has no ':' (which some tools dislike in names). */
function stamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export class Journal {
  /** null while the journal cannot be written (it then lives in memory only). */
  private fd: number | null = null;
  private size = 0;
  private live: JournalState;
  /** A write failed part-way: the file may end in half a line, so the next append starts on a fresh line. */
  private torn = false;
  /** Extra fencing tokens to persist at compaction (the lock table's counters), so tokens only ever grow. */
  fenceSource: (() => Record<string, number>) | null = null;
  /** Called once per failure episode when the journal cannot be written; the daemon logs it. */
  onError?: (message: string) => void;
  private failing = false;
  private closed = false;
  /** While unwritable, the rewrite is retried at most this often (a full disk must not cost a rewrite per change). */
  private static readonly RETRY_MS = 1000;
  private lastRetry = 0;

  private constructor(
    readonly path: string,
    state: JournalState,
  ) {
    this.live = { runs: new Map(state.runs), holds: new Map(state.holds), fences: new Map(state.fences), badLines: 0, unreadable: null };
    this.reopen();
  }

  /**
   * Read what a previous daemon left (tolerating garbage), set a damaged file aside, and open for appending.
   * Never throws.
   */
  static open(stateDir: string, now: Date = new Date()): { journal: Journal; previous: JournalState; report: JournalOpenReport } {
    const path = join(stateDir, JOURNAL_FILE);
    const previous = Journal.read(path);
    let setAsidePath: string | null = null;
    if (previous.badLines > 0 || previous.unreadable !== null) {
      const aside = `${path}.corrupt-${stamp(now)}`;
      try {
        renameSync(path, aside);
        setAsidePath = aside;
      } catch {
        // Cannot move it (read-only dir): the compaction below replaces it, or we run from memory.
      }
    }
    const journal = new Journal(path, previous);
    // A damaged or torn file is replaced at once by the good live entries, so appends never follow half a line.
    // (A clean one is compacted by the daemon after reconcile; one fsync per start is enough.)
    if (setAsidePath !== null || previous.badLines > 0 || previous.unreadable !== null || previous.tornTail) journal.compact();
    const writeError = journal.fd === null ? (journal.lastError ?? 'cannot open the journal') : null;
    return { journal, previous, report: { setAsidePath, writeError } };
  }

  static read(path: string): JournalState {
    const state = emptyState();
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') state.unreadable = errnoCode(e) ?? (e as Error).message;
      return state;
    }
    state.tornTail = text.length > 0 && !text.endsWith('\n');
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const e = parseJournalLine(line);
      if (e === null) state.badLines++;
      else Journal.apply(state, e);
    }
    return state;
  }

  private static noteFences(state: JournalState, locks: Array<{ key: string; fencing_token: number }>): void {
    for (const l of locks) {
      if ((state.fences.get(l.key) ?? 0) < l.fencing_token) state.fences.set(l.key, l.fencing_token);
    }
  }

  private static apply(state: JournalState, e: JournalEntry): void {
    switch (e.t) {
      case 'fence':
        if ((state.fences.get(e.key) ?? 0) < e.token) state.fences.set(e.key, e.token);
        break;
      case 'run':
        state.runs.set(e.run_id, e);
        Journal.noteFences(state, e.locks);
        break;
      case 'run_end':
        state.runs.delete(e.run_id);
        break;
      case 'hold':
        state.holds.set(e.hold_id, e);
        Journal.noteFences(state, e.locks);
        break;
      case 'hold_hb': {
        const h = state.holds.get(e.hold_id);
        if (h) state.holds.set(e.hold_id, { ...h, expires_at: e.expires_at });
        break;
      }
      case 'hold_end':
        state.holds.delete(e.hold_id);
        break;
    }
  }

  /** The live entries as this journal knows them (copies). */
  liveRuns(): RunRecord[] {
    return [...this.live.runs.values()];
  }

  liveHolds(): HoldRecord[] {
    return [...this.live.holds.values()];
  }

  get writable(): boolean {
    return this.fd !== null;
  }

  append(e: JournalEntry): void {
    Journal.apply(this.live, e.t === 'run' || e.t === 'hold' ? { ...e } : e);
    if (this.closed) return;
    if (this.fd === null) {
      // Try again now and then: a full disk gets space back, and then the whole live state must be rewritten anyway.
      const now = Date.now();
      if (now - this.lastRetry >= Journal.RETRY_MS) {
        this.lastRetry = now;
        this.compact();
      }
      return;
    }
    const line = `${(this.torn ? '\n' : '') + JSON.stringify(e)}\n`;
    if (!this.writeAll(line)) return;
    if (this.size > COMPACT_AT_BYTES) this.compact();
  }

  private lastError: string | null = null;

  private writeAll(text: string): boolean {
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    try {
      while (off < buf.length) {
        const n = writeSync(this.fd!, buf, off, buf.length - off);
        if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
        off += n;
        this.size += n;
      }
      this.torn = false;
      this.failing = false;
      return true;
    } catch (err) {
      if (off > 0) this.torn = true;
      this.fail(err);
      return false;
    }
  }

  private fail(err: unknown): void {
    this.lastError = errnoCode(err) ?? (err as Error).message;
    if (!this.failing) this.onError?.(`journal write failed (${this.lastError}); the daemon keeps working, but a crash now would lose track of runs`);
    this.failing = true;
  }

  private reopen(): void {
    try {
      this.fd = openSync(this.path, 'a', 0o600);
      this.size = fstatSync(this.fd).size;
    } catch (err) {
      this.fd = null;
      this.fail(err);
    }
  }

  /** Rewrite the file with the live entries only (atomic replace). Never throws. */
  compact(): void {
    if (this.closed) return;
    const fences = new Map(this.live.fences);
    try {
      for (const [key, token] of Object.entries(this.fenceSource?.() ?? {})) {
        if ((fences.get(key) ?? 0) < token) fences.set(key, token);
      }
    } catch {
      /* the table is not ready yet: the recorded fences are enough */
    }
    this.live.fences = fences;
    const lines: string[] = [];
    for (const [key, token] of fences) lines.push(JSON.stringify({ t: 'fence', key, token }));
    for (const r of this.live.runs.values()) lines.push(JSON.stringify(r));
    for (const h of this.live.holds.values()) lines.push(JSON.stringify(h));
    const tmp = `${this.path}.tmp`;
    let tfd: number | null = null;
    try {
      tfd = openSync(tmp, 'w', 0o600);
      const buf = Buffer.from(lines.length ? `${lines.join('\n')}\n` : '', 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(tfd, buf, off, buf.length - off);
      fsyncSync(tfd);
      closeSync(tfd);
      tfd = null;
      // Windows refuses to rename over a file that is open (EPERM): close the append handle first; reopen() below
      // opens the new file either way. Appends meanwhile are impossible (the daemon has one thread).
      if (process.platform === 'win32' && this.fd !== null) {
        closeSync(this.fd);
        this.fd = null;
      }
      renameSync(tmp, this.path);
    } catch (err) {
      if (tfd !== null) {
        try {
          closeSync(tfd);
        } catch {
          /* already failing */
        }
      }
      this.fail(err);
      return;
    }
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
    }
    this.torn = false;
    this.reopen();
    if (this.fd !== null) this.failing = false;
  }

  close(): void {
    this.closed = true;
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.fd = null;
  }
}
