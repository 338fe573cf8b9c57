/**
 * Admission to the lock table: whether a request may enter (its claims well formed, its keys' kinds compatible, its
 * pool claims satisfiable at all), and which pool members it could take now. Reads the table's state, never
 * changes it; lock-table.ts decides what to do with the answer.
 */
import { LockdError } from '../../util/errors.js';
import type { LockMode, LockRequest, PoolClaim, PoolDefinition, PoolMember, RejectCode, Rejection } from './lock-table-types.js';
import { poolMemberKey } from './lock-table-types.js';
import { keyOf, type Req, type TableState } from './lock-table-state.js';

const MODES: ReadonlySet<string> = new Set<LockMode>(['exclusive', 'shared', 'slots']);

export function validate<M>(st: TableState<M>, request: LockRequest<M>): Rejection | null {
  const reject = (code: RejectCode, message: string): Rejection => ({ kind: 'rejected', code, message });
  if (typeof request?.id !== 'string' || request.id === '') {
    return reject('bad_claim', 'request id must be a non-empty string');
  }
  if (st.requests.has(request.id)) {
    return reject('duplicate_request', `request ${request.id} is already in the lock table`);
  }
  if (!Array.isArray(request.claims)) return reject('bad_claim', `request ${request.id} must list its claims`);
  if (request.pools !== undefined && !Array.isArray(request.pools)) return reject('bad_claim', `request ${request.id}: pools must be a list`);
  if (request.claims.length === 0 && (request.pools ?? []).length === 0) {
    return reject('bad_claim', `request ${request.id} must claim at least one lock`);
  }
  if (request.priority !== undefined && !Number.isSafeInteger(request.priority)) {
    return reject('bad_claim', `request ${request.id}: priority must be an integer`);
  }
  const poolRejection = validatePoolClaims(st, request);
  if (poolRejection) return poolRejection;
  const seen = new Set<string>();
  for (const c of request.claims) {
    if (typeof c?.key !== 'string' || c.key === '') {
      return reject('bad_claim', `request ${request.id}: every claim needs a non-empty key`);
    }
    if (seen.has(c.key)) return reject('bad_claim', `request ${request.id} claims ${c.key} more than once`);
    seen.add(c.key);
    if (!MODES.has(c.mode)) {
      return reject('bad_claim', `request ${request.id}: ${c.key} has unknown mode ${String(c.mode)}`);
    }
    if (c.mode === 'slots') {
      if (typeof c.slots !== 'number' || !Number.isSafeInteger(c.slots) || c.slots < 1) {
        return reject('bad_claim', `request ${request.id}: ${c.key} needs a slot count that is a positive integer`);
      }
    } else if (c.slots !== undefined) {
      return reject('bad_claim', `request ${request.id}: ${c.key} gives a slot count for a ${c.mode} claim`);
    }
    const ks = st.keys.get(c.key);
    if (!ks) continue;
    if (ks.capacity === null && c.mode === 'slots') {
      return reject('bad_claim', `${c.key} is in use as an exclusive/shared lock; it cannot be claimed as slots until it is free`);
    }
    if (ks.capacity !== null && c.mode !== 'slots') {
      return reject('bad_claim', `${c.key} is in use as a ${ks.capacity}-slot lock; it cannot be claimed ${c.mode} until it is free`);
    }
    if (ks.capacity !== null && c.slots !== ks.capacity) {
      return reject('slots_mismatch', `${c.key} is in use with ${ks.capacity} slots; request ${request.id} asks for ${c.slots}`);
    }
  }
  return null;
}

export function validatePoolClaims<M>(st: TableState<M>, request: LockRequest<M>): Rejection | null {
  const claims = request.pools ?? [];
  if (claims.length === 0) return null;
  const reject = (code: RejectCode, message: string): Rejection => ({ kind: 'rejected', code, message });
  const parent = request.parent === undefined ? undefined : st.requests.get(request.parent);
  if (parent?.state === 'holding') return reject('bad_claim', `request ${request.id}: a nested request cannot claim pool members`);
  const seen = new Set<string>();
  for (const pc of claims) {
    if (typeof pc?.pool !== 'string' || pc.pool === '') return reject('bad_claim', `request ${request.id}: every pool claim needs a pool name`);
    if (seen.has(pc.pool)) return reject('bad_claim', `request ${request.id} claims pool ${pc.pool} more than once`);
    seen.add(pc.pool);
    if (!Number.isSafeInteger(pc.count) || pc.count < 1) return reject('bad_claim', `request ${request.id}: pool ${pc.pool} needs a count that is a positive integer`);
    if (pc.where !== undefined && (typeof pc.where !== 'object' || pc.where === null || Object.values(pc.where).some((v) => typeof v !== 'string'))) {
      return reject('bad_claim', `request ${request.id}: pool ${pc.pool} has a malformed where`);
    }
    const def = st.pools.get(pc.pool);
    if (!def) {
      const known = [...st.pools.keys()];
      return reject('unknown_pool', `unknown pool ${pc.pool} (pools: ${known.length > 0 ? known.join(', ') : 'none defined'})`);
    }
    if (pc.member !== undefined && !def.members.some((m) => m.name === pc.member)) {
      return reject('unknown_pool', `pool ${pc.pool} has no member ${pc.member} (members: ${def.members.map((m) => m.name).join(', ') || 'none'})`);
    }
    const matching = def.members.filter((m) => memberMatches(m, pc));
    const enabled = matching.filter((m) => !m.disabled);
    if (enabled.length < pc.count) {
      const filter = describeFilter(pc);
      const disabled = matching.filter((m) => m.disabled).map((m) => m.name);
      const listed = enabled.length > 0 ? `only ${enabled.length} can be granted: ${enabled.map((m) => m.name).join(', ')}` : 'none can be granted';
      const off = disabled.length > 0 ? ` (disabled: ${disabled.join(', ')})` : '';
      const what =
        matching.length === 0 && filter !== '' ? `no member of pool ${pc.pool} matches ${filter}` : `pool ${pc.pool}: ${pc.count} wanted${filter ? ` matching ${filter}` : ''}, ${listed}${off}`;
      return reject('pool_unsatisfiable', what);
    }
  }
  return null;
}

/** The candidates of pool claim i of r: enabled members matching it, in the pool's order. */
export function candidates<M>(st: TableState<M>, pc: PoolClaim): PoolMember[] {
  const def = st.pools.get(pc.pool);
  return def ? def.members.filter((m) => !m.disabled && memberMatches(m, pc)) : [];
}

/**
 * Per pool claim, the member keys r could take now (free, no nested waiter, and: queued → r first in line;
 * new → nobody of r's priority or higher in line), or null when some claim has fewer than its count.
 */
export function choosePoolMembers<M>(st: TableState<M>, r: Req<M>): string[][] | null {
  const chosen: string[][] = [];
  if (r.state === 'waiting' && st.requests.get(r.id) === r) {
    for (const [i, pc] of r.pools.entries()) {
      const keys: string[] = [];
      for (const node of r.memberNodes[i]!) {
        if (keys.length === pc.count) break;
        const ks = keyOf(st, node);
        if (ks.holders.size === 0 && ks.nestedQueue.size === 0 && ks.topQueue.head === node) keys.push(ks.key);
      }
      if (keys.length < pc.count) return null;
      chosen.push(keys);
    }
    return chosen;
  }
  for (const pc of r.pools) {
    const keys: string[] = [];
    for (const m of candidates(st, pc)) {
      if (keys.length === pc.count) break;
      const key = poolMemberKey(pc.pool, m.name);
      const ks = st.keys.get(key);
      if (!ks || (ks.holders.size === 0 && ks.nestedQueue.size === 0 && !(ks.topQueue.head && ks.topQueue.head.req.priority >= r.priority))) keys.push(key);
    }
    if (keys.length < pc.count) return null;
    chosen.push(keys);
  }
  return chosen;
}

/** Does member m satisfy pool claim pc (its `member`, and every `where` KEY=VALUE)? */
function memberMatches(m: PoolMember, pc: PoolClaim): boolean {
  if (pc.member !== undefined && m.name !== pc.member) return false;
  for (const [k, v] of Object.entries(pc.where ?? {})) if (m.properties[k] !== v) return false;
  return true;
}

function describeFilter(pc: PoolClaim): string {
  const parts = Object.entries(pc.where ?? {}).map(([k, v]) => `${k}=${v}`);
  if (pc.member !== undefined) parts.unshift(`member ${pc.member}`);
  return parts.join(' ');
}

/** Copy and check pool definitions: names non-empty and unique, properties strings. Throws bad_option. */
export function validatePools(defs: PoolDefinition[]): Map<string, PoolDefinition> {
  const out = new Map<string, PoolDefinition>();
  const bad = (message: string): never => {
    throw new LockdError('bad_option', message);
  };
  if (!Array.isArray(defs)) bad('pools must be a list');
  for (const d of defs) {
    if (typeof d?.name !== 'string' || d.name === '' || d.name.includes('/')) bad('every pool needs a name without "/"');
    if (out.has(d.name)) bad(`pool ${d.name} is defined twice`);
    if (!Array.isArray(d.members)) bad(`pool ${d.name}: members must be a list`);
    const names = new Set<string>();
    const members = d.members.map((m) => {
      if (typeof m?.name !== 'string' || m.name === '') bad(`pool ${d.name}: every member needs a name`);
      if (names.has(m.name)) bad(`pool ${d.name}: member ${m.name} is listed twice`);
      names.add(m.name);
      const props = m.properties ?? {};
      if (typeof props !== 'object' || props === null || Object.values(props).some((v) => typeof v !== 'string')) {
        bad(`pool ${d.name}: member ${m.name}'s properties must be strings`);
      }
      const copy: PoolMember = { name: m.name, properties: { ...props } };
      if (m.disabled) copy.disabled = true;
      return copy;
    });
    out.set(d.name, { name: d.name, members });
  }
  return out;
}
