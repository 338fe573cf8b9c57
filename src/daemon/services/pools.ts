/**
 * Pools from the state dir's lockd.json (`"pools": {"boards": {"members": {"rpi4-a": {"arch": "arm64"}}}}`), handed
 * to the lock table. Each member is an exclusive lock on its own lock file, <state-dir>/pools/<pool>/<member>.lock,
 * so the flock, the `.meta`, the journal and reconcile treat it like any lock file.
 *
 * The file is read again when it changed (its mtime, size and inode), checked before each request that names a pool
 * and before status: a lockd.json edited while jobs run takes effect at the next such request. A malformed file
 * changes nothing: the last good pools stay in force and the daemon logs why, once per version of the file.
 * `lockd pool add|remove|disable|enable` edits are laid over the file (pools-overlay.ts) and survive restarts.
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LockTable, PoolDefinition } from '../locks/lock-table.js';
import type { Owner } from '../locks/owner.js';
import type { Grant } from '../locks/lock-table.js';
import { LockdError } from '../../util/errors.js';
import { PoolOverlay, type RawPool } from './pools-overlay.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

interface Log {
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
}

export class PoolConfig {
  readonly path: string;
  readonly overlay: PoolOverlay;
  #version: string | null = null;
  /** lockd.json's pools as last read successfully. */
  #base: Record<string, RawPool> = {};
  /** The pools in force: #base with the run-time edits, cluster pools as etcd shares them. */
  #effective: Record<string, RawPool> = {};
  /** #base with the run-time edits (what this host alone says; the seed of a cluster pool's shared definition). */
  #local: Record<string, RawPool> = {};
  /** Cluster pools: the shared definition from etcd, which wins over this host's (set by the cluster backend). */
  #shared = new Map<string, { members: Record<string, Record<string, string>>; disabled: Record<string, string> }>();
  /** System mode: the highest --priority a non-admin may ask for (lockd.json "max_user_priority", default 0). */
  maxUserPriority = 0;
  /** Why the current file was not used (null when it was, or there is none). */
  lastError: string | null = null;

  constructor(
    private readonly stateDir: string,
    private readonly table: LockTable<Owner>,
    private readonly dispatch: (grants: Grant<Owner>[]) => void,
    private readonly log: Log,
    /** Called after the pools in force changed (queued runs whose members are gone are ended there). */
    private readonly changed: (effective: Record<string, RawPool>) => void = () => undefined,
  ) {
    this.path = join(stateDir, 'lockd.json');
    this.overlay = new PoolOverlay(stateDir);
    const bad = this.overlay.load();
    if (bad) this.log.warn('pool edits not loaded', { error: bad });
  }

  /** The pools in force (lockd.json with the run-time edits). */
  effective(): Record<string, RawPool> {
    return this.#effective;
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
    try {
      const text = version === 'absent' ? '{}' : readFileSync(this.path, 'utf8');
      const base = this.parse(text);
      const max = (JSON.parse(text) as Record<string, unknown>)['max_user_priority'] ?? 0;
      if (!Number.isSafeInteger(max)) throw new LockdError('bad_config', `${this.path}: "max_user_priority" must be an integer`);
      this.#install(base);
      this.maxUserPriority = max as number;
      this.lastError = null;
      this.log.info('pools loaded', { path: this.path, pools: Object.entries(this.#effective).map(([n, p]) => `${n}(${Object.keys(p.members).length})`) });
    } catch (e) {
      this.lastError = (e as Error).message;
      this.log.warn('lockd.json pools not loaded; the last good pools stay in force', { path: this.path, error: this.lastError });
    }
  }

  /** One `lockd pool` change: checked, saved, then in force (waiters queued for a member enabled or added get it). */
  edit(action: 'add' | 'remove' | 'disable' | 'enable', pool: string, member: string | null, properties: Record<string, string>, reason: string | null): void {
    this.refresh();
    this.overlay.edit(this.#effective, action, pool, member, properties, reason);
    this.#install(this.#base);
    this.log.info('pool changed', { action, pool, member, reason });
  }

  /** Pools with `"scope": "cluster"` as this host defines them (what seeds their shared definition in etcd). */
  clusterPools(): Record<string, RawPool> {
    return Object.fromEntries(Object.entries(this.#local).filter(([, p]) => p.scope === 'cluster'));
  }

  /** Is `pool` shared by the cluster (`"scope": "cluster"`)? */
  isClusterPool(pool: string): boolean {
    return this.#effective[pool]?.scope === 'cluster';
  }

  /** The cluster backend read a cluster pool's shared definition: it is the one in force here from now on. */
  setShared(pool: string, def: { members: Record<string, Record<string, string>>; disabled: Record<string, string> }): void {
    this.#shared.set(pool, { members: { ...def.members }, disabled: { ...def.disabled } });
    try {
      this.#install(this.#base);
      this.log.info('cluster pool definition in force', { pool, members: Object.keys(def.members), disabled: Object.keys(def.disabled) });
    } catch (e) {
      this.log.warn('cluster pool definition not usable; the last good one stays in force', { pool, error: (e as Error).message });
    }
  }

  /** Make `base` with the edits the pools in force; throws (changing nothing) when they are malformed. */
  #install(base: Record<string, RawPool>): void {
    const local = this.overlay.apply(base);
    const effective: Record<string, RawPool> = {};
    for (const [name, p] of Object.entries(local)) {
      const shared = p.scope === 'cluster' ? this.#shared.get(name) : undefined;
      effective[name] = shared ? { members: { ...shared.members }, disabled: { ...shared.disabled }, scope: 'cluster' } : p;
    }
    const defs: PoolDefinition[] = Object.entries(effective).map(([name, p]) => ({
      name,
      members: Object.entries(p.members).map(([member, properties]) => ({
        name: member,
        properties: { ...properties },
        key: join(this.stateDir, 'pools', name, `${member}.lock`),
        ...(member in p.disabled ? { disabled: true, ...(p.disabled[member] ? { disabledReason: p.disabled[member] } : {}) } : {}),
      })),
    }));
    for (const d of defs) mkdirSync(join(this.stateDir, 'pools', d.name), { recursive: true, mode: 0o755 });
    const change = this.table.setPools(defs);
    this.#base = base;
    this.#local = local;
    this.#effective = effective;
    if (change.unsatisfiable.length > 0) this.log.warn('waiting runs can no longer get enough pool members', { ids: change.unsatisfiable });
    this.dispatch(change.grants);
    this.changed(effective);
  }

  /** lockd.json text → its pools; throws LockdError bad_config naming the first problem. */
  parse(text: string): Record<string, RawPool> {
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
    if (pools === undefined) return {};
    if (typeof pools !== 'object' || pools === null || Array.isArray(pools)) return bad('"pools" must be an object of pools');
    const out: Record<string, RawPool> = {};
    for (const [name, def] of Object.entries(pools as Record<string, unknown>)) {
      if (!NAME.test(name)) bad(`pool name ${JSON.stringify(name)} must be letters, digits, . _ - (it names a directory)`);
      if (typeof def !== 'object' || def === null || Array.isArray(def)) bad(`pool ${name} must be an object with "members"`);
      const d = def as Record<string, unknown>;
      const members = d['members'];
      if (typeof members !== 'object' || members === null || Array.isArray(members)) bad(`pool ${name}: "members" must be an object of members`);
      const disabled = d['disabled'] ?? {};
      if (typeof disabled !== 'object' || disabled === null || Array.isArray(disabled)) bad(`pool ${name}: "disabled" must map members to reasons`);
      const scope = d['scope'] ?? 'host';
      if (scope !== 'host' && scope !== 'cluster') bad(`pool ${name}: "scope" must be "host" or "cluster"`);
      const pool: RawPool = { members: {}, disabled: {}, ...(scope === 'cluster' ? { scope: 'cluster' as const } : {}) };
      for (const [member, props] of Object.entries(members as Record<string, unknown>)) {
        if (!NAME.test(member)) bad(`pool ${name}: member name ${JSON.stringify(member)} must be letters, digits, . _ -`);
        if (typeof props !== 'object' || props === null || Array.isArray(props)) bad(`pool ${name}: member ${member} must be an object of properties`);
        for (const [k, v] of Object.entries(props as Record<string, unknown>)) {
          if (typeof v !== 'string') bad(`pool ${name}: member ${member}: property ${k} must be a string`);
        }
        pool.members[member] = { ...(props as Record<string, string>) };
      }
      for (const [member, reason] of Object.entries(disabled as Record<string, unknown>)) {
        if (!(member in pool.members)) bad(`pool ${name}: "disabled" names ${member}, which is not a member`);
        pool.disabled[member] = typeof reason === 'string' ? reason : '';
      }
      out[name] = pool;
    }
    return out;
  }
}
