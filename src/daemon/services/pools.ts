/**
 * Pools from the state dir's lockd.json (`"pools": {"boards": {"members": {"rpi4-a": {"arch": "arm64"}}}}`), handed
 * to the lock table. Each member is an exclusive lock on its own lock file, <state-dir>/pools/<pool>/<member>.lock,
 * so the flock, the `.meta`, the journal and reconcile treat it like any lock file.
 *
 * The file is read again when it changed (its mtime, size and inode), checked before each request that names a pool
 * and before status: a lockd.json edited while jobs run takes effect at the next such request. A malformed file
 * changes nothing: the last good pools stay in force and the daemon logs why, once per version of the file.
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LockTable, PoolDefinition } from '../locks/lock-table.js';
import type { Owner } from '../locks/owner.js';
import type { Grant } from '../locks/lock-table.js';
import { LockdError } from '../../util/errors.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

interface Log {
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
}

export class PoolConfig {
  readonly path: string;
  #version: string | null = null;
  /** Why the current file was not used (null when it was, or there is none). */
  lastError: string | null = null;

  constructor(
    private readonly stateDir: string,
    private readonly table: LockTable<Owner>,
    private readonly dispatch: (grants: Grant<Owner>[]) => void,
    private readonly log: Log,
  ) {
    this.path = join(stateDir, 'lockd.json');
  }

  /** Re-read lockd.json if it changed; apply its pools, or keep the last good ones and say why. */
  refresh(): void {
    let version: string;
    try {
      const st = statSync(this.path);
      version = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      version = 'absent';
    }
    if (version === this.#version) return;
    this.#version = version;
    let defs: PoolDefinition[];
    try {
      defs = version === 'absent' ? [] : this.parse(readFileSync(this.path, 'utf8'));
      for (const d of defs) mkdirSync(join(this.stateDir, 'pools', d.name), { recursive: true, mode: 0o755 });
      const change = this.table.setPools(defs);
      this.lastError = null;
      this.log.info('pools loaded', { path: this.path, pools: defs.map((d) => `${d.name}(${d.members.length})`) });
      if (change.unsatisfiable.length > 0) this.log.warn('waiting runs can no longer get enough pool members', { ids: change.unsatisfiable });
      this.dispatch(change.grants);
    } catch (e) {
      this.lastError = (e as Error).message;
      this.log.warn('lockd.json pools not loaded; the last good pools stay in force', { path: this.path, error: this.lastError });
    }
  }

  /** lockd.json text → pool definitions; throws LockdError bad_config naming the first problem. */
  parse(text: string): PoolDefinition[] {
    const bad = (what: string): never => {
      throw new LockdError('bad_config', `${this.path}: ${what}`);
    };
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      return bad(`not valid JSON (${(e as Error).message})`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('must be a JSON object');
    const pools = (raw as Record<string, unknown>)['pools'];
    if (pools === undefined) return [];
    if (typeof pools !== 'object' || pools === null || Array.isArray(pools)) return bad('"pools" must be an object of pools');
    return Object.entries(pools as Record<string, unknown>).map(([name, def]) => {
      if (!NAME.test(name)) bad(`pool name ${JSON.stringify(name)} must be letters, digits, . _ - (it names a directory)`);
      if (typeof def !== 'object' || def === null || Array.isArray(def)) bad(`pool ${name} must be an object with "members"`);
      const d = def as Record<string, unknown>;
      const members = d['members'];
      if (typeof members !== 'object' || members === null || Array.isArray(members)) bad(`pool ${name}: "members" must be an object of members`);
      const disabled = d['disabled'] ?? {};
      if (typeof disabled !== 'object' || disabled === null || Array.isArray(disabled)) bad(`pool ${name}: "disabled" must map members to reasons`);
      return {
        name,
        members: Object.entries(members as Record<string, unknown>).map(([member, props]) => {
          if (!NAME.test(member)) bad(`pool ${name}: member name ${JSON.stringify(member)} must be letters, digits, . _ -`);
          if (typeof props !== 'object' || props === null || Array.isArray(props)) bad(`pool ${name}: member ${member} must be an object of properties`);
          for (const [k, v] of Object.entries(props as Record<string, unknown>)) {
            if (typeof v !== 'string') bad(`pool ${name}: member ${member}: property ${k} must be a string`);
          }
          return {
            name: member,
            properties: { ...(props as Record<string, string>) },
            key: join(this.stateDir, 'pools', name, `${member}.lock`),
            ...(member in (disabled as Record<string, unknown>) ? { disabled: true } : {}),
          };
        }),
      };
    });
  }
}
