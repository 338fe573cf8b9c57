/**
 * The run-time pool edits of `lockd pool add|remove|disable|enable`, kept in <state-dir>/pools-state.json and laid
 * over lockd.json's pools. Kept apart from lockd.json so that an admin's hand edits of that file are never rewritten
 * by the daemon (comments of a future format, key order, formatting), and so that both survive a restart: the file
 * is read at start-up and written (atomically: temp file, fsync, rename) after every change.
 *
 * What wins: an edit made with `lockd pool` overrides lockd.json for the members it names (a member disabled in
 * lockd.json can be enabled at run time, a member added at run time can be removed again); everything else comes
 * from lockd.json as it is now.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LockdError } from '../../util/errors.js';

/** One pool as lockd.json (or an edit) defines it: members with properties, disabled members with a reason. */
export interface RawPool {
  members: Record<string, Record<string, string>>;
  /** member → why it is disabled ('' when no reason was given). */
  disabled: Record<string, string>;
  /** `"scope": "cluster"`: shared by every host of the etcd cluster (docs/cluster.md, "Pools"); default the host. */
  scope?: 'cluster';
}

interface PoolEdits {
  /** The whole pool was removed (lockd.json's definition is ignored) or added at run time. */
  removed?: boolean;
  added?: boolean;
  /** Members added at run time, with their properties. */
  members?: Record<string, Record<string, string>>;
  removed_members?: string[];
  /** member → reason (disabled) or null (enabled, overriding lockd.json's "disabled"). */
  disabled?: Record<string, string | null>;
}

interface OverlayFile {
  version: 1;
  pools: Record<string, PoolEdits>;
}

export class PoolOverlay {
  readonly path: string;
  #edits: Record<string, PoolEdits> = {};

  constructor(stateDir: string) {
    this.path = join(stateDir, 'pools-state.json');
  }

  /** Read the saved edits; a missing file is no edits, an unreadable one is said in one line (the daemon logs it). */
  load(): string | null {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return null;
    }
    try {
      const parsed = JSON.parse(text) as OverlayFile;
      if (parsed?.version !== 1 || typeof parsed.pools !== 'object' || parsed.pools === null) throw new Error('not a version 1 pools state');
      this.#edits = parsed.pools;
      return null;
    } catch (e) {
      return `${this.path}: ${(e as Error).message}; run-time pool edits ignored`;
    }
  }

  /** lockd.json's pools with the edits laid over them. */
  apply(base: Record<string, RawPool>): Record<string, RawPool> {
    const out: Record<string, RawPool> = {};
    for (const [name, p] of Object.entries(base)) out[name] = { members: { ...p.members }, disabled: { ...p.disabled }, ...(p.scope ? { scope: p.scope } : {}) };
    for (const [name, e] of Object.entries(this.#edits)) {
      if (e.removed) {
        delete out[name];
        continue;
      }
      if (!out[name]) {
        if (!e.added) continue; // edits of a pool lockd.json no longer has: nothing to lay them on
        out[name] = { members: {}, disabled: {} };
      }
      const p = out[name]!;
      Object.assign(p.members, e.members ?? {});
      for (const m of e.removed_members ?? []) delete p.members[m];
      for (const [m, reason] of Object.entries(e.disabled ?? {})) {
        if (reason === null) delete p.disabled[m];
        else p.disabled[m] = reason;
      }
      for (const m of Object.keys(p.disabled)) if (!(m in p.members)) delete p.disabled[m];
    }
    return out;
  }

  /**
   * Apply one edit to `current` (the effective pools now), checking it first: throws LockdError with one clear line
   * when the pool or member does not exist (or already does, for add). Saved before it returns.
   */
  edit(current: Record<string, RawPool>, action: 'add' | 'remove' | 'disable' | 'enable', pool: string, member: string | null, properties: Record<string, string>, reason: string | null): void {
    const p = current[pool];
    const e = (this.#edits[pool] ??= {});
    if (member === null) {
      if (action === 'add') {
        if (p) throw new LockdError('pool_exists', `pool ${pool} already exists (members: ${Object.keys(p.members).join(', ') || 'none'})`);
        this.#edits[pool] = { added: true };
      } else if (action === 'remove') {
        if (!p) throw unknownPool(pool, current);
        this.#edits[pool] = { removed: true };
      } else {
        if (!p) throw unknownPool(pool, current);
        e.disabled ??= {};
        for (const m of Object.keys(p.members)) e.disabled[m] = action === 'disable' ? (reason ?? '') : null;
      }
    } else {
      if (!p) throw unknownPool(pool, current);
      const exists = member in p.members;
      if (action === 'add') {
        if (exists) throw new LockdError('pool_exists', `pool ${pool} already has a member ${member}`);
        e.members = { ...(e.members ?? {}), [member]: { ...properties } };
        e.removed_members = (e.removed_members ?? []).filter((m) => m !== member);
        if (e.disabled) delete e.disabled[member];
      } else {
        if (!exists) throw new LockdError('unknown_member', `pool ${pool} has no member ${member} (members: ${Object.keys(p.members).join(', ') || 'none'})`);
        if (action === 'remove') {
          if (e.members) delete e.members[member];
          e.removed_members = [...new Set([...(e.removed_members ?? []), member])];
          if (e.disabled) delete e.disabled[member];
        } else {
          e.disabled = { ...(e.disabled ?? {}), [member]: action === 'disable' ? (reason ?? '') : null };
        }
      }
    }
    this.#save();
  }

  #save(): void {
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, `${JSON.stringify({ version: 1, pools: this.#edits } satisfies OverlayFile, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
  }
}

export function unknownPool(pool: string, current: Record<string, RawPool>): LockdError {
  const names = Object.keys(current);
  return new LockdError('unknown_pool', `unknown pool ${pool} (pools: ${names.length > 0 ? names.join(', ') : 'none defined'})`);
}
