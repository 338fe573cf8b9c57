/**
 * The daemon's crash journal: an append-only JSON-lines file in the state dir recording every live run and hold,
 * so that a daemon started after a crash (kill -9, OOM) knows which process trees and locks the old one owned.
 * Appends are one small write(2) each, never a rewrite, so adding runs stays O(1) however long history grows;
 * the file is compacted to its live entries at start-up and whenever it grows past a bound.
 * No fsync: the journal protects against the daemon dying, not against the machine losing power (after a reboot
 * no process a record names can be alive anyway).
 */
import { closeSync, openSync, readFileSync, renameSync, writeSync, fstatSync, writeFileSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode } from '../util/errors.js';

export interface JournalLock {
  key: string;
  name: string;
  scope: 'local' | 'global' | 'cluster';
  mode: 'exclusive' | 'shared' | 'slots';
  slots?: number;
  fencing_token: number;
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
  /** Lines that could not be parsed (a torn last write, or corruption), for the log. */
  badLines: number;
}

const COMPACT_AT_BYTES = 4 * 1024 * 1024;

export class Journal {
  private fd: number;
  private size: number;
  private live: JournalState;

  private constructor(readonly path: string, state: JournalState) {
    this.live = { runs: new Map(state.runs), holds: new Map(state.holds), fences: new Map(state.fences), badLines: 0 };
    this.fd = openSync(path, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  /** Read what a previous daemon left (tolerating garbage), and open for appending. */
  static open(stateDir: string): { journal: Journal; previous: JournalState } {
    const path = join(stateDir, 'journal.jsonl');
    const previous = Journal.read(path);
    return { journal: new Journal(path, previous), previous };
  }

  static read(path: string): JournalState {
    const state: JournalState = { runs: new Map(), holds: new Map(), fences: new Map(), badLines: 0 };
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') state.badLines++;
      return state;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      let e: JournalEntry;
      try {
        e = JSON.parse(line) as JournalEntry;
        if (typeof e !== 'object' || e === null || typeof (e as { t?: unknown }).t !== 'string') throw new Error('shape');
      } catch {
        state.badLines++;
        continue;
      }
      Journal.apply(state, e);
    }
    return state;
  }

  private static noteFences(state: JournalState, locks: Array<{ key: string; fencing_token: number }>): void {
    for (const l of locks) {
      if (typeof l.fencing_token === 'number' && (state.fences.get(l.key) ?? 0) < l.fencing_token) state.fences.set(l.key, l.fencing_token);
    }
  }

  private static apply(state: JournalState, e: JournalEntry): void {
    switch (e.t) {
      case 'fence':
        if (typeof e.key === 'string' && typeof e.token === 'number' && (state.fences.get(e.key) ?? 0) < e.token) state.fences.set(e.key, e.token);
        break;
      case 'run':
        if (typeof e.run_id === 'string' && Array.isArray(e.locks)) {
          state.runs.set(e.run_id, e);
          Journal.noteFences(state, e.locks);
        } else state.badLines++;
        break;
      case 'run_end':
        state.runs.delete(e.run_id);
        break;
      case 'hold':
        if (typeof e.hold_id === 'string' && Array.isArray(e.locks)) {
          state.holds.set(e.hold_id, e);
          Journal.noteFences(state, e.locks);
        } else state.badLines++;
        break;
      case 'hold_hb': {
        const h = state.holds.get(e.hold_id);
        if (h) h.expires_at = e.expires_at;
        break;
      }
      case 'hold_end':
        state.holds.delete(e.hold_id);
        break;
      default:
        state.badLines++;
    }
  }

  append(e: JournalEntry): void {
    Journal.apply(this.live, e.t === 'run' || e.t === 'hold' ? { ...e } : e);
    const line = JSON.stringify(e) + '\n';
    try {
      this.size += writeSync(this.fd, line);
    } catch {
      // A full or read-only state dir must not stop the locks from working; the log says so once per failure.
      this.onError?.();
      return;
    }
    if (this.size > COMPACT_AT_BYTES) this.compact();
  }

  onError?: () => void;

  /** Rewrite the file with the live entries only (atomic replace). */
  compact(): void {
    const lines: string[] = [];
    for (const [key, token] of this.live.fences) lines.push(JSON.stringify({ t: 'fence', key, token }));
    for (const r of this.live.runs.values()) lines.push(JSON.stringify(r));
    for (const h of this.live.holds.values()) lines.push(JSON.stringify(h));
    const tmp = `${this.path}.tmp`;
    try {
      writeFileSync(tmp, lines.length ? lines.join('\n') + '\n' : '', { mode: 0o600 });
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      closeSync(this.fd);
      this.fd = openSync(this.path, 'a', 0o600);
      this.size = fstatSync(this.fd).size;
    } catch {
      this.onError?.();
    }
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
}
