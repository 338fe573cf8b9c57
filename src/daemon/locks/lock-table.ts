/**
 * The lock table: every lock the daemon owns, who holds it and who waits for it.
 *
 * Pure, synchronous and in memory (no I/O, no timers): the daemon calls it on every
 * request and acts on the results (start a run, reply to a client, journal a token).
 *
 * Rules, in one place (the tests name them):
 *
 * - Modes. `exclusive`: one holder. `shared`: any number of shared holders, no
 *   exclusive. `slots` (capacity N): a counting semaphore; each holder takes one slot
 *   and gets the lowest free slot index 0..N-1.
 * - A key "in use" (held or waited on) has a fixed kind. Claiming it with a different
 *   N is rejected `slots_mismatch`; claiming a slots key as exclusive/shared, or an
 *   exclusive/shared key as slots, is rejected `bad_claim` (mixing would make the
 *   capacity meaningless). Once nobody holds or waits on a key, it is forgotten (the
 *   fencing counter excepted) and may be used with any kind again.
 * - All-or-nothing: a request is granted all its claims at once or waits holding none,
 *   so two multi-lock requests naming keys in opposite order can never deadlock.
 * - Fairness. Each key keeps its waiters in arrival order. A top-level request can be
 *   granted on a key only if no earlier top-level waiter and no nested waiter still
 *   waits on that key (the head reserves the key, so a stream of shared or small
 *   requests cannot starve a waiting exclusive one, and a multi-lock waiter reserves
 *   every key it names).
 * - Nesting. A request whose `parent` currently holds locks joins the parent's
 *   *family* (a family is a top-level request plus every nested request under it,
 *   transitively; it is named after that top-level request's id). A request's
 *   *ancestors* (its parent, the parent's parent, …) are transparent to it: on a key
 *   its family holds, the claim is granted as a *nested* claim (an extra holder entry
 *   with the family's slot index and fencing token) once nobody but its ancestors is in
 *   the way. Siblings are not transparent: two requests nested under one hold (or one
 *   run) respect each other's mode like any two holders, and a family's one slot of a
 *   slots key is used by one line of descent at a time. Against other families the
 *   claim is checked as before;
 *   nested requests ignore (jump ahead of) top-level waiters, because their family
 *   holds locks those waiters want. So a family holding a key shared may upgrade a
 *   nested claim to exclusive once no other family shares it. A `parent` that is
 *   unknown or not holding is ignored: the request is an ordinary top-level one.
 *   Nestedness is fixed at submit: a queued nested request whose family has since
 *   released a key gets that key as a fresh (non-nested) claim when granted.
 *   Nested waiters are ahead of every top-level waiter on their keys, so they also
 *   reserve those keys against top-level requests (otherwise a stream of shared
 *   top-level grants could starve a nested exclusive waiter).
 * - Deadlock. (Waits between siblings of one family are not edges: a sibling holding a
 *   key never waits for the one it blocks unless their own nested children wait for each
 *   other's keys, which is not detected; such requests wait out their --wait.)
 *   Wait-for relation between families: F waits for G when a nested waiter
 *   of F is blocked by a holder entry of G (a family is stuck while any of its nested
 *   requests is stuck, since the run usually waits for its descendants). A request
 *   blocked on a full slots key waits for *any* one occupying family, other claims
 *   wait for *all* conflicting families. A submit that would make some families
 *   permanently stuck (a cycle) by *waiting* is rejected `deadlock` with the cycle's
 *   family names. *Granting* a nested request can close a cycle too (its new entries
 *   block another family's waiter); such a request is held back instead (queued,
 *   its blockers are the waiters it yields to) and granted once that no longer
 *   deadlocks — this covers a queued request whose turn comes during a release.
 * - Fencing: every non-nested grant of a key gets the key's last token + 1 (starting
 *   from `initialFencing[key] ?? 0`); nested claims reuse the family's token.
 * - Grant order after a release or cancel: first nested waiters, smallest arrival
 *   first, then top-level waiters in queue order (priority, then arrival).
 * - Priorities. A top-level request has an integer priority (default 0). Each key's
 *   top-level queue is ordered by priority, higher first, then by arrival: "earlier"
 *   in the fairness rule means earlier in that order. A new request may take a free
 *   key only when no nested waiter and no top-level waiter of the same or higher
 *   priority waits on it. A queued request never loses a key it reserves to a later
 *   request of its own priority or lower; a higher one goes ahead of it.
 * - Pools. A pool (setPools) has named members with properties; a member is disabled
 *   or not. A pool claim asks for COUNT members matching every `where` KEY=VALUE (or
 *   the one `member` named). Its *candidates* are the enabled members that match. Each
 *   member is an exclusive key (poolMemberKey). A waiting pool claim is queued on every
 *   candidate, so it reserves all of them: a later request never takes a member an
 *   earlier waiter could be granted with (no line-skipping: a request for 2 is not
 *   starved by a stream of 1s). A request is granted when every ordinary claim is
 *   grantable and, for each pool claim, at least COUNT candidates are free and have it
 *   first in their queue; it takes the first COUNT such members in the pool's order.
 *   A later request that needs only members no earlier waiter can use goes ahead
 *   (backfill). Disabled members are never granted. A pool claim naming an unknown
 *   pool or member is rejected `unknown_pool`; one with fewer candidates than COUNT is
 *   rejected `pool_unsatisfiable` at submit (never a wait that cannot end). setPools
 *   replaces the definitions: holders keep what they hold (a removed or disabled
 *   member leaves when released), waiters are re-queued on their new candidates in
 *   their old order, and waiters that can no longer be satisfied are reported.
 *   Pool claims are for top-level requests (a nested one is rejected `bad_claim`).
 *
 * Cost: an operation touches only the keys of the requests involved, the waiters of
 * those keys that it grants plus one head per key, and (for nested requests only) the
 * nested waiters. 10,000 waiters on one key release in O(1) each.
 */

import { LockdError } from '../../util/errors.js';
import type {
  LockMode,
  LockClaim,
  LockRequest,
  GrantedClaim,
  Grant,
  RejectCode,
  Rejection,
  Blocker,
  SubmitResult,
  TryResult,
  HolderSnapshot,
  WaiterSnapshot,
  LockSnapshot,
  LockTableOptions,
  PoolClaim,
  PoolDefinition,
  PoolMember,
  PoolsChange,
} from './lock-table-types.js';
import { poolMemberKey } from './lock-table-types.js';
import { comesBefore, KeyState, MinHeap, type BlockGroup, type Entry, type Family, type QueueNode, type Req, type VirtualGrant } from './lock-table-state.js';

const DEFAULT_MAX_WAITER_BLOCKERS = 8;
const MODES: ReadonlySet<string> = new Set<LockMode>(['exclusive', 'shared', 'slots']);

export type {
  LockMode,
  LockClaim,
  LockRequest,
  GrantedClaim,
  Grant,
  RejectCode,
  Rejection,
  Blocker,
  SubmitResult,
  TryResult,
  HolderSnapshot,
  WaiterSnapshot,
  LockSnapshot,
  LockTableOptions,
  PoolClaim,
  PoolDefinition,
  PoolMember,
  PoolsChange,
} from './lock-table-types.js';
export { poolMemberKey } from './lock-table-types.js';

// ---------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------

export class LockTable<M = unknown> {
  readonly #now: () => number;
  readonly #maxWaiterBlockers: number;
  readonly #requests = new Map<string, Req<M>>();
  readonly #keys = new Map<string, KeyState<M>>();
  readonly #lastToken = new Map<string, number>();
  /** All waiting nested requests: the only requests that can take part in a deadlock. */
  readonly #nestedWaiting = new Set<Req<M>>();
  /** Nested waiters held back because granting them would close a wait-for cycle. */
  readonly #heldBack = new Set<Req<M>>();
  #seq = 0;
  #pools = new Map<string, PoolDefinition>();

  constructor(opts: LockTableOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#maxWaiterBlockers = opts.maxWaiterBlockersPerKey ?? DEFAULT_MAX_WAITER_BLOCKERS;
    for (const [key, token] of Object.entries(opts.initialFencing ?? {})) {
      if (!Number.isSafeInteger(token) || token < 0) {
        throw new LockdError('bad_option', `initial fencing token for ${key} must be a non-negative integer`, { key, token });
      }
      this.#lastToken.set(key, token);
    }
    if (opts.pools) this.#pools = validatePools(opts.pools);
  }

  /** The pool definitions in force. */
  pools(): PoolDefinition[] {
    return [...this.#pools.values()];
  }

  /**
   * Replace the pool definitions (throws LockdError bad_option on a malformed one, changing nothing). Holders keep
   * their members; every waiting pool claim is re-queued on its new candidates, keeping its place in line.
   */
  setPools(defs: PoolDefinition[]): PoolsChange<M> {
    this.#pools = validatePools(defs);
    const dirty = new Set<KeyState<M>>();
    const unsatisfiable: string[] = [];
    const waiting = [...this.#requests.values()].filter((r) => r.state === 'waiting' && r.pools.length > 0).sort((a, b) => a.seq - b.seq);
    for (const r of waiting) {
      for (const nodes of r.memberNodes) {
        for (const node of nodes) {
          dirty.add(this.#keyOf(node));
          node.queue.remove(node);
        }
      }
      r.memberNodes = this.#queueMembers(r);
      for (const nodes of r.memberNodes) for (const node of nodes) dirty.add(this.#keyOf(node));
      if (r.pools.some((pc, i) => r.memberNodes[i]!.length < pc.count)) unsatisfiable.push(r.id);
    }
    // A member that was added or enabled is free for waiters queued on it now, and for nobody else.
    return { grants: this.#settle(dirty), unsatisfiable };
  }

  /** Grant now, queue, or reject. */
  submit(request: LockRequest<M>): SubmitResult<M> {
    const admitted = this.#admit(request);
    if ('kind' in admitted) return admitted;
    const r = admitted;

    if (!r.nested) {
      if (this.#freshTopGrantable(r)) return { kind: 'granted', grant: this.#grant(r) };
      this.#enqueue(r);
      return { kind: 'queued', blockers: this.#blockers(r) };
    }

    if (this.#holderCompatible(r)) {
      if (!this.#grantWouldDeadlock(r)) return { kind: 'granted', grant: this.#grant(r) };
      // Free for it, but taking it now would trap another family's waiter in a cycle.
      this.#enqueue(r);
      this.#heldBack.add(r);
      return { kind: 'queued', blockers: this.#blockers(r) };
    }

    const cycle = this.#findDeadlock({ extraWaiter: r }, r.family);
    if (cycle) return this.#deadlockRejection(r, cycle);
    this.#enqueue(r);
    return { kind: 'queued', blockers: this.#blockers(r) };
  }

  /** Like submit, but never queues (for --wait 0): granted, busy (with blockers) or rejected. */
  tryOnly(request: LockRequest<M>): TryResult<M> {
    const admitted = this.#admit(request);
    if ('kind' in admitted) return admitted;
    const r = admitted;
    const grantable = r.nested ? this.#holderCompatible(r) && !this.#grantWouldDeadlock(r) : this.#freshTopGrantable(r);
    if (grantable) return { kind: 'granted', grant: this.#grant(r) };
    return { kind: 'busy', blockers: this.#blockers(r) };
  }

  /**
   * Withdraw a queued request (timeout, client gone). Returns the requests granted as a
   * consequence, in grant order. A holding or unknown id is left alone and gives [] — so a
   * timeout racing a grant never drops a granted lock; use release for holders.
   */
  cancel(requestId: string): Grant<M>[] {
    const r = this.#requests.get(requestId);
    if (r?.state !== 'waiting') return [];
    return this.#withdraw(r);
  }

  /**
   * Drop a request: a holder's entries go (its nested requests' entries stay), a waiter is
   * withdrawn as by cancel. Returns newly granted requests in grant order; unknown id → [].
   */
  release(requestId: string): Grant<M>[] {
    const r = this.#requests.get(requestId);
    if (!r) return [];
    if (r.state === 'waiting') return this.#withdraw(r);

    this.#requests.delete(r.id);
    const dirty = new Set<KeyState<M>>();
    for (const e of r.entries) {
      const ks = e.keyState;
      ks.holders.delete(r);
      if (e.mode === 'exclusive') ks.exclusiveCount--;
      const tally = ks.families.get(r.family)!;
      tally.entries--;
      if (e.mode === 'exclusive') tally.exclusive--;
      if (tally.entries === 0) {
        ks.families.delete(r.family);
        if (ks.slots && tally.slotIndex !== undefined) ks.slots.give(tally.slotIndex);
      }
      dirty.add(ks);
    }
    r.entries = [];
    return this.#settle(dirty);
  }

  isHolding(requestId: string): boolean {
    return this.#requests.get(requestId)?.state === 'holding';
  }

  isWaiting(requestId: string): boolean {
    return this.#requests.get(requestId)?.state === 'waiting';
  }

  /** The grant a holding request received, or null. */
  grantOf(requestId: string): Grant<M> | null {
    return this.#requests.get(requestId)?.grant ?? null;
  }

  /**
   * Why a waiter waits: per claim, the holders in its way, then the waiters reserving the key
   * ahead of it (at most maxWaiterBlockersPerKey per key). [] when not waiting.
   */
  blockersOf(requestId: string): Blocker<M>[] {
    const r = this.#requests.get(requestId);
    return r && r.state === 'waiting' ? this.#blockers(r) : [];
  }

  /**
   * The request ids among blockersOf(requestId): first the holders in its way (in claim order), then the waiters
   * ahead of it, each id once. What `lockd status` shows as "blocked by". [] when not waiting.
   */
  blockerIdsOf(requestId: string): string[] {
    const r = this.#requests.get(requestId);
    return r && r.state === 'waiting' ? this.#blockerIds(r) : [];
  }

  /**
   * blockerIdsOf for every waiter of one key, in the order of snapshotKey(key).waiters; [] for a key nobody uses.
   * A status snapshot needs it for every waiter: the top-level waiters with this one claim behind the first
   * maxWaiterBlockersPerKey of the line all see the same holders and the same waiters ahead, so they share one
   * array (read-only) instead of each building its own — O(1) apiece for a line of 10,000.
   */
  blockerIdsByWaiter(key: string): string[][] {
    const ks = this.#keys.get(key);
    if (!ks) return [];
    const out: string[][] = [];
    const shared = new Map<string, string[]>();
    let index = 0;
    for (const queue of [ks.nestedQueue, ks.topQueue]) {
      for (let node = queue.head; node; node = node.next, index++) {
        const r = node.req;
        if (r.nested || r.claims.length !== 1 || r.pools.length > 0 || index < this.#maxWaiterBlockers) {
          out.push(this.#blockerIds(r));
          continue;
        }
        // Its family is itself (it holds nothing), so only its claim's mode decides which holders are in its way.
        const sig = node.claim.mode;
        let ids = shared.get(sig);
        if (!ids) shared.set(sig, (ids = this.#blockerIds(r)));
        out.push(ids);
      }
    }
    return out;
  }

  #blockerIds(r: Req<M>): string[] {
    const holders: string[] = [];
    const waiters: string[] = [];
    const holdersInWay = this.#visitBlockers(
      r,
      (_c, who) => holders.push(who.id),
      (_i, _c, who) => waiters.push(who.id),
    );
    const ids = r.nested && holdersInWay > 0 ? holders : holders.concat(waiters);
    if (r.pools.length > 0) {
      const poolHolders: string[] = [];
      const poolWaiters: string[] = [];
      this.#visitPoolBlockers(
        r,
        (_key, who) => poolHolders.push(who.id),
        (_key, who) => poolWaiters.push(who.id),
      );
      return [...new Set(ids.concat(poolHolders, poolWaiters))];
    }
    // On one key a request is either a holder or a waiter, and each once: repeats come only from several claims.
    return r.claims.length === 1 ? ids : [...new Set(ids)];
  }

  /**
   * 1-based position in the longest line among its keys: on each key, nested waiters come
   * first and then top-level ones, each in arrival order; the largest such position over the
   * request's keys. 0 when not waiting. O(waiters on its keys).
   */
  queuePosition(requestId: string): number {
    const r = this.#requests.get(requestId);
    if (r?.state !== 'waiting') return 0;
    let worst = 0;
    for (const node of r.nodes) worst = Math.max(worst, this.#positionOf(node));
    // A pool claim's line is as long as its count-th shortest line among its candidates.
    r.pools.forEach((pc, i) => {
      const positions = r.memberNodes[i]!.map((node) => this.#positionOf(node)).sort((a, b) => a - b);
      worst = Math.max(worst, positions[pc.count - 1] ?? positions[positions.length - 1] ?? 0);
    });
    return worst;
  }

  /**
   * Every waiter's 1-based position on one key (nested waiters first, then top-level ones, each in arrival order),
   * in one walk of the key's queues: O(waiters on the key) for all of them, where asking queuePosition waiter by
   * waiter walks back to the head each time (O(N²) for a line of N). Empty for a key nobody uses.
   */
  positionsOn(key: string): Map<string, number> {
    const out = new Map<string, number>();
    const ks = this.#keys.get(key);
    if (!ks) return out;
    let pos = 0;
    for (const queue of [ks.nestedQueue, ks.topQueue]) for (let n = queue.head; n; n = n.next) out.set(n.req.id, ++pos);
    return out;
  }

  /** Every key held or waited on, sorted by key. */
  snapshot(): LockSnapshot<M>[] {
    const keys = [...this.#keys.keys()].sort();
    return keys.map((k) => this.#snapshotOf(this.#keys.get(k)!));
  }

  snapshotKey(key: string): LockSnapshot<M> | null {
    const ks = this.#keys.get(key);
    return ks ? this.#snapshotOf(ks) : null;
  }

  /** Last fencing token handed out per key (including initialFencing), for the journal. */
  fencingTokens(): Record<string, number> {
    return Object.fromEntries(this.#lastToken);
  }

  // -------------------------------------------------------------------------------
  // Admission and validation
  // -------------------------------------------------------------------------------

  /** Validate and build the internal request (not yet registered), or say why not. */
  #admit(request: LockRequest<M>): Req<M> | Rejection {
    const invalid = this.#validate(request);
    if (invalid) return invalid;
    const parent = request.parent === undefined ? undefined : this.#requests.get(request.parent);
    const nested = parent !== undefined && parent.state === 'holding';
    return {
      request,
      id: request.id,
      seq: ++this.#seq,
      since: this.#now(),
      family: nested ? parent.family : { name: request.id },
      nested,
      parentReq: nested ? parent : null,
      claims: request.claims.map((c) => (c.mode === 'slots' ? { key: c.key, mode: c.mode, slots: c.slots } : { key: c.key, mode: c.mode })),
      pools: (request.pools ?? []).map((pc) => {
        const copy: PoolClaim = { pool: pc.pool, count: pc.count };
        if (pc.where) copy.where = { ...pc.where };
        if (pc.member !== undefined) copy.member = pc.member;
        return copy;
      }),
      priority: request.priority ?? 0,
      state: 'waiting',
      nodes: [],
      memberNodes: [],
      entries: [],
      grant: null,
    };
  }

  #validate(request: LockRequest<M>): Rejection | null {
    const reject = (code: RejectCode, message: string): Rejection => ({ kind: 'rejected', code, message });
    if (typeof request?.id !== 'string' || request.id === '') {
      return reject('bad_claim', 'request id must be a non-empty string');
    }
    if (this.#requests.has(request.id)) {
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
    const poolRejection = this.#validatePoolClaims(request);
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
      const ks = this.#keys.get(c.key);
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

  #validatePoolClaims(request: LockRequest<M>): Rejection | null {
    const claims = request.pools ?? [];
    if (claims.length === 0) return null;
    const reject = (code: RejectCode, message: string): Rejection => ({ kind: 'rejected', code, message });
    const parent = request.parent === undefined ? undefined : this.#requests.get(request.parent);
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
      const def = this.#pools.get(pc.pool);
      if (!def) {
        const known = [...this.#pools.keys()];
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
  #candidates(pc: PoolClaim): PoolMember[] {
    const def = this.#pools.get(pc.pool);
    return def ? def.members.filter((m) => !m.disabled && memberMatches(m, pc)) : [];
  }

  /**
   * Per pool claim, the member keys r could take now (free, no nested waiter, and: queued → r first in line;
   * new → nobody of r's priority or higher in line), or null when some claim has fewer than its count.
   */
  #choosePoolMembers(r: Req<M>): string[][] | null {
    const chosen: string[][] = [];
    if (r.state === 'waiting' && this.#requests.get(r.id) === r) {
      for (const [i, pc] of r.pools.entries()) {
        const keys: string[] = [];
        for (const node of r.memberNodes[i]!) {
          if (keys.length === pc.count) break;
          const ks = this.#keyOf(node);
          if (ks.holders.size === 0 && ks.nestedQueue.size === 0 && ks.topQueue.head === node) keys.push(ks.key);
        }
        if (keys.length < pc.count) return null;
        chosen.push(keys);
      }
      return chosen;
    }
    for (const pc of r.pools) {
      const keys: string[] = [];
      for (const m of this.#candidates(pc)) {
        if (keys.length === pc.count) break;
        const key = poolMemberKey(pc.pool, m.name);
        const ks = this.#keys.get(key);
        if (!ks || (ks.holders.size === 0 && ks.nestedQueue.size === 0 && !(ks.topQueue.head && ks.topQueue.head.req.priority >= r.priority))) keys.push(key);
      }
      if (keys.length < pc.count) return null;
      chosen.push(keys);
    }
    return chosen;
  }

  // -------------------------------------------------------------------------------
  // Grantability
  // -------------------------------------------------------------------------------

  /**
   * Could this claim of r coexist with the key's current holders? r's ancestors (the requests it is nested under,
   * transitively) are transparent to it: it re-enters what they hold. Every other holder counts by its mode, a
   * sibling in the same family included. A family still takes one slot of a slots key: r shares it only when
   * nobody but its ancestors occupies it.
   */
  #claimFits(ks: KeyState<M>, claim: LockClaim, r: Req<M>): boolean {
    const tally = ks.families.get(r.family);
    let ancestors = 0;
    let ancestorsExclusive = 0;
    if (tally) {
      for (let p = r.parentReq; p; p = p.parentReq) {
        const e = ks.holders.get(p);
        if (!e) continue;
        ancestors++;
        if (e.mode === 'exclusive') ancestorsExclusive++;
      }
    }
    switch (claim.mode) {
      case 'exclusive':
        return ks.holders.size === ancestors;
      case 'shared':
        return ks.exclusiveCount === ancestorsExclusive;
      case 'slots':
        return tally !== undefined ? tally.entries === ancestors : ks.families.size < ks.capacity!;
    }
  }

  /** Is `a` one of the requests r is nested under (transitively)? */
  #isAncestor(a: Req<M>, r: Req<M>): boolean {
    for (let p = r.parentReq; p; p = p.parentReq) if (p === a) return true;
    return false;
  }

  #holderCompatible(r: Req<M>): boolean {
    for (const c of r.claims) {
      const ks = this.#keys.get(c.key);
      if (ks && !this.#claimFits(ks, c, r)) return false;
    }
    return true;
  }

  /** A new top-level request: on every key no waiter ahead of it (nested, or of its priority or higher), fitting. */
  #freshTopGrantable(r: Req<M>): boolean {
    for (const c of r.claims) {
      const ks = this.#keys.get(c.key);
      if (!ks) continue;
      if (ks.nestedQueue.size > 0 || (ks.topQueue.head && ks.topQueue.head.req.priority >= r.priority)) return false;
      if (!this.#claimFits(ks, c, r)) return false;
    }
    return r.pools.length === 0 || this.#choosePoolMembers(r) !== null;
  }

  /** A queued top-level request: first top-level waiter, no nested waiter, fitting — on every key. */
  #queuedTopGrantable(r: Req<M>): boolean {
    for (const node of r.nodes) {
      const ks = this.#keyOf(node);
      if (ks.nestedQueue.size > 0 || ks.topQueue.head !== node) return false;
      if (!this.#claimFits(ks, node.claim, r)) return false;
    }
    return r.pools.length === 0 || this.#choosePoolMembers(r) !== null;
  }

  #keyOf(node: QueueNode<M>): KeyState<M> {
    return this.#keys.get(node.claim.key)!;
  }

  // -------------------------------------------------------------------------------
  // Mutations
  // -------------------------------------------------------------------------------

  #ensureKey(claim: LockClaim): KeyState<M> {
    let ks = this.#keys.get(claim.key);
    if (!ks) {
      ks = new KeyState<M>(claim.key, claim.mode === 'slots' ? claim.slots! : null);
      this.#keys.set(claim.key, ks);
    }
    return ks;
  }

  #enqueue(r: Req<M>): void {
    this.#requests.set(r.id, r);
    r.nodes = r.claims.map((c) => {
      const ks = this.#ensureKey(c);
      return r.nested ? ks.nestedQueue.push(r, c) : ks.topQueue.insertOrdered(r, c);
    });
    r.memberNodes = this.#queueMembers(r);
    if (r.nested) this.#nestedWaiting.add(r);
  }

  /** Queue r on every candidate member of each of its pool claims. */
  #queueMembers(r: Req<M>): QueueNode<M>[][] {
    return r.pools.map((pc) =>
      this.#candidates(pc).map((m) => {
        const claim: LockClaim = { key: poolMemberKey(pc.pool, m.name), mode: 'exclusive' };
        return this.#ensureKey(claim).topQueue.insertOrdered(r, claim);
      }),
    );
  }

  /** Every queue node of a waiting request: its claims', then its pool members'. */
  #allNodes(r: Req<M>): QueueNode<M>[] {
    return r.memberNodes.length === 0 ? r.nodes : r.nodes.concat(...r.memberNodes);
  }

  #unqueue(r: Req<M>): void {
    for (const node of this.#allNodes(r)) node.queue.remove(node);
    r.nodes = [];
    r.memberNodes = [];
    this.#nestedWaiting.delete(r);
    this.#heldBack.delete(r);
  }

  /** Turn r into a holder of all its claims (it must fit); registers it if new. */
  #grant(r: Req<M>): Grant<M> {
    const members = r.pools.length > 0 ? this.#choosePoolMembers(r)! : [];
    if (r.state === 'waiting') this.#unqueue(r);
    this.#requests.set(r.id, r);
    const grantedAt = this.#now();
    const memberClaims: LockClaim[] = members.flat().map((key) => ({ key, mode: 'exclusive' }));
    r.entries = [...r.claims, ...memberClaims].map((c) => {
      const ks = this.#ensureKey(c);
      const held = ks.families.get(r.family);
      const slotIndex = c.mode === 'slots' ? (held ? held.slotIndex : ks.slots!.take()) : undefined;
      const fencingToken = held ? held.fencingToken : this.#nextToken(c.key);
      const entry: Entry<M> = {
        req: r,
        keyState: ks,
        mode: c.mode,
        slotIndex,
        fencingToken,
        nested: held !== undefined,
        grantedAt,
      };
      ks.holders.set(r, entry);
      const isExclusive = c.mode === 'exclusive' ? 1 : 0;
      ks.exclusiveCount += isExclusive;
      if (held) {
        held.entries++;
        held.exclusive += isExclusive;
      } else {
        ks.families.set(r.family, { entries: 1, exclusive: isExclusive, slotIndex, fencingToken });
      }
      return entry;
    });
    r.state = 'holding';
    r.grant = {
      request: r.request,
      claims: r.entries.map((e, i) => {
        const g: GrantedClaim = { key: e.keyState.key, mode: e.mode, fencingToken: e.fencingToken, nested: e.nested };
        if (e.slotIndex !== undefined) g.slotIndex = e.slotIndex;
        if (i >= r.claims.length) {
          const at = e.keyState.key.indexOf('/');
          g.pool = e.keyState.key.slice('pool:'.length, at);
          g.member = e.keyState.key.slice(at + 1);
        }
        return g;
      }),
      grantedAt,
    };
    return r.grant;
  }

  #nextToken(key: string): number {
    const token = (this.#lastToken.get(key) ?? 0) + 1;
    this.#lastToken.set(key, token);
    return token;
  }

  #withdraw(r: Req<M>): Grant<M>[] {
    const dirty = new Set<KeyState<M>>();
    for (const node of this.#allNodes(r)) dirty.add(this.#keyOf(node));
    this.#unqueue(r);
    this.#requests.delete(r.id);
    return this.#settle(dirty);
  }

  /** Grant whatever the change on `dirty` keys made grantable, then forget idle keys. */
  #settle(dirty: Set<KeyState<M>>): Grant<M>[] {
    const grants = this.#pump(dirty);
    for (const ks of dirty) {
      if (ks.idle && this.#keys.get(ks.key) === ks) this.#keys.delete(ks.key);
    }
    return grants;
  }

  /**
   * After holders or waiters left the `dirty` keys: grant nested waiters (smallest arrival
   * first, re-checking after each grant, since a grant can un-hold-back another), then
   * top-level waiters by arrival. Only waiters of dirty keys and held-back ones can have
   * become grantable: a top-level grant adds holders (enables nothing nested), and a granted
   * waiter can enable only waiters behind it on its own keys, which become dirty.
   */
  #pump(dirty: Set<KeyState<M>>): Grant<M>[] {
    const grants: Grant<M>[] = [];

    const nestedCandidates = new Set<Req<M>>(this.#heldBack);
    for (const ks of dirty) for (const node of ks.nestedQueue) nestedCandidates.add(node.req);
    const ordered = [...nestedCandidates].sort((a, b) => a.seq - b.seq);
    for (let progressed = true; progressed; ) {
      progressed = false;
      for (let i = 0; i < ordered.length; i++) {
        const n = ordered[i]!;
        if (!this.#holderCompatible(n)) {
          // Only a holder leaving one of its keys can change that; that key will be dirty then.
          this.#heldBack.delete(n);
          ordered.splice(i--, 1);
          continue;
        }
        if (this.#grantWouldDeadlock(n)) {
          this.#heldBack.add(n);
          continue;
        }
        for (const node of n.nodes) dirty.add(this.#keyOf(node));
        grants.push(this.#grant(n));
        ordered.splice(i, 1);
        progressed = true;
        break;
      }
    }

    const heads = new MinHeap<Req<M>>(comesBefore);
    for (const ks of dirty) if (ks.topQueue.head) heads.push(ks.topQueue.head.req);
    while (heads.size > 0) {
      const t = heads.pop()!;
      if (t.state !== 'waiting' || !this.#queuedTopGrantable(t)) continue;
      const keys = this.#allNodes(t).map((node) => this.#keyOf(node));
      grants.push(this.#grant(t));
      for (const ks of keys) if (ks.topQueue.head) heads.push(ks.topQueue.head.req);
    }
    return grants;
  }

  // -------------------------------------------------------------------------------
  // Deadlock detection
  // -------------------------------------------------------------------------------

  /** Would granting nested request r now leave some families stuck for good? */
  #grantWouldDeadlock(r: Req<M>): boolean {
    // Only another family's nested waiter that r's new entries would block can get stuck;
    // without one, granting r only removes wait-for edges.
    let someoneBlocked = false;
    for (const c of r.claims) {
      const ks = this.#keys.get(c.key);
      if (!ks) continue;
      for (const node of ks.nestedQueue) {
        const w = node.req;
        if (w !== r && w.family !== r.family && this.#newEntryWouldBlock(ks, c, r.family, node.claim, w.family)) {
          someoneBlocked = true;
          break;
        }
      }
      if (someoneBlocked) break;
    }
    if (!someoneBlocked) return false;
    const byKey = new Map(r.claims.map((c) => [c.key, c] as const));
    return this.#findDeadlock({ virtualGrant: { req: r, byKey } }, r.family) !== null;
  }

  #newEntryWouldBlock(ks: KeyState<M>, mine: LockClaim, myFamily: Family, theirs: LockClaim, theirFamily: Family): boolean {
    switch (theirs.mode) {
      case 'exclusive':
        return true;
      case 'shared':
        return mine.mode === 'exclusive';
      case 'slots':
        return !ks.families.has(theirFamily) && !ks.families.has(myFamily) && ks.families.size + 1 >= ks.capacity!;
    }
  }

  /**
   * Families that could never proceed in the current state, modified by one hypothetical
   * change (an extra waiter, or a waiter granted). Reduction: a family is free when it has
   * no blocked nested waiter, or when every blocked waiter's blockers are free ('all'
   * groups) or include a free one ('any' groups); repeat until nothing changes. Whatever
   * remains is deadlocked; returns a cycle through `focus` (or any cycle), else null.
   */
  #findDeadlock(change: { extraWaiter?: Req<M>; virtualGrant?: VirtualGrant<M> }, focus: Family): string[] | null {
    const waiters = [...this.#nestedWaiting];
    if (change.extraWaiter) waiters.push(change.extraWaiter);
    const blockedBy = new Map<Family, BlockGroup[]>();
    for (const w of waiters) {
      if (w === change.virtualGrant?.req) continue;
      for (const c of w.claims) {
        const group = this.#blockGroup(c, w.family, change.virtualGrant);
        if (!group) continue;
        let groups = blockedBy.get(w.family);
        if (!groups) blockedBy.set(w.family, (groups = []));
        groups.push(group);
      }
    }
    const stuck = new Set(blockedBy.keys());
    const satisfied = (g: BlockGroup): boolean => (g.need === 'all' ? g.families.every((f) => !stuck.has(f)) : g.families.some((f) => !stuck.has(f)));
    for (let changed = true; changed; ) {
      changed = false;
      for (const f of stuck) {
        if (blockedBy.get(f)!.every(satisfied)) {
          stuck.delete(f);
          changed = true;
        }
      }
    }
    if (stuck.size === 0) return null;

    const next = new Map<Family, Family[]>();
    for (const f of stuck) {
      const targets = new Set<Family>();
      for (const g of blockedBy.get(f)!) {
        if (!satisfied(g)) for (const h of g.families) if (stuck.has(h)) targets.add(h);
      }
      next.set(f, [...targets]);
    }
    return cycleThrough(next, stuck.has(focus) ? focus : stuck.values().next().value!).map((f) => f.name);
  }

  /** Which families block `claim` of `family` (with a hypothetical grant's entries added), or null. */
  #blockGroup(claim: LockClaim, family: Family, virtual: VirtualGrant<M> | undefined): BlockGroup | null {
    const ks = this.#keys.get(claim.key);
    const vClaim = virtual?.byKey.get(claim.key);
    const vFamily = vClaim ? virtual!.req.family : undefined;
    const families: Family[] = [];
    switch (claim.mode) {
      case 'exclusive':
      case 'shared': {
        if (ks) {
          for (const [f, tally] of ks.families) {
            if (f !== family && (claim.mode === 'exclusive' || tally.exclusive > 0)) families.push(f);
          }
        }
        if (vFamily && vFamily !== family && (claim.mode === 'exclusive' || vClaim!.mode === 'exclusive')) {
          if (!families.includes(vFamily)) families.push(vFamily);
        }
        return families.length > 0 ? { need: 'all', families } : null;
      }
      case 'slots': {
        if (ks?.families.has(family) || vFamily === family) return null;
        if (ks) families.push(...ks.families.keys());
        if (vFamily && !families.includes(vFamily)) families.push(vFamily);
        const capacity = ks?.capacity ?? claim.slots!;
        return families.length >= capacity ? { need: 'any', families } : null;
      }
    }
  }

  #deadlockRejection(r: Req<M>, cycle: string[]): Rejection {
    const loop = [...cycle, cycle[0]].join(' → ');
    return {
      kind: 'rejected',
      code: 'deadlock',
      message: `deadlock: request ${r.id} (under run ${r.family.name}) would wait in a cycle where each run waits for the next: ${loop}`,
      cycle,
    };
  }

  // -------------------------------------------------------------------------------
  // Reporting
  // -------------------------------------------------------------------------------

  /** Blockers for a waiting or would-be request (see blockersOf). */
  #blockers(r: Req<M>): Blocker<M>[] {
    const out: Blocker<M>[] = [];
    const waitersAhead: Blocker<M>[][] = r.claims.map(() => []);
    const blocker = (key: string, kind: Blocker<M>['kind'], who: Req<M>): Blocker<M> => ({
      key,
      kind,
      requestId: who.id,
      meta: who.request.meta,
    });
    const holdersInWay = this.#visitBlockers(
      r,
      (c, who) => out.push(blocker(c.key, 'holder', who)),
      (i, c, who) => waitersAhead[i]!.push(blocker(c.key, 'waiter', who)),
    );
    // A nested request waits on holders; only a held-back one (nothing in its way) yields to waiters.
    if (r.nested && holdersInWay > 0) return out;
    const ordinary = sortByClaimOrder(r.claims, out, waitersAhead);
    if (r.pools.length === 0) return ordinary;
    const poolHolders: Blocker<M>[] = [];
    const poolWaiters: Blocker<M>[] = [];
    this.#visitPoolBlockers(
      r,
      (key, who) => poolHolders.push(blocker(key, 'holder', who)),
      (key, who) => poolWaiters.push(blocker(key, 'waiter', who)),
    );
    return ordinary.concat(poolHolders, poolWaiters);
  }

  /**
   * Pool claims' blockers: the holders of its candidate members, then the waiters ahead of it on them (each request
   * once per pool claim, at most maxWaiterBlockersPerKey waiters per claim).
   */
  #visitPoolBlockers(r: Req<M>, onHolder: (key: string, who: Req<M>) => void, onWaiter: (key: string, who: Req<M>) => void): void {
    const queued = r.state === 'waiting' && this.#requests.get(r.id) === r;
    r.pools.forEach((pc, i) => {
      const keys = queued ? r.memberNodes[i]!.map((n) => n.claim.key) : this.#candidates(pc).map((m) => poolMemberKey(pc.pool, m.name));
      const ahead = new Set<Req<M>>();
      for (const key of keys) {
        const ks = this.#keys.get(key);
        if (!ks) continue;
        for (const e of ks.holders.values()) onHolder(key, e.req);
      }
      for (const key of keys) {
        const ks = this.#keys.get(key);
        if (!ks) continue;
        for (const queue of [ks.nestedQueue, ks.topQueue]) {
          for (let node = queue.head; node; node = node.next) {
            const w = node.req;
            if (w === r || ahead.size >= this.#maxWaiterBlockers) break;
            if (!queued && queue === ks.topQueue && w.priority < r.priority) break;
            if (!ahead.has(w)) {
              ahead.add(w);
              onWaiter(key, w);
            }
          }
        }
      }
    });
  }

  /**
   * The walk behind #blockers: per claim (in claim order), the holder entries in the way, then the waiters
   * reserving the key ahead of it (at most maxWaiterBlockersPerKey per key). Returns how many holders it reported.
   */
  #visitBlockers(r: Req<M>, onHolder: (c: LockClaim, who: Req<M>) => void, onWaiter: (claimIndex: number, c: LockClaim, who: Req<M>) => void): number {
    let holdersInWay = 0;
    const max = this.#maxWaiterBlockers;
    r.claims.forEach((c, i) => {
      const ks = this.#keys.get(c.key);
      if (!ks) return;
      if (!this.#claimFits(ks, c, r)) {
        // On a slots key where r's family has its slot, only the siblings in that slot are in the way.
        const inFamilySlot = c.mode === 'slots' && ks.families.has(r.family);
        for (const e of ks.holders.values()) {
          if (inFamilySlot && e.req.family !== r.family) continue;
          if (!this.#isAncestor(e.req, r) && this.#entryBlocks(e, c)) {
            onHolder(c, e.req);
            holdersInWay++;
          }
        }
      }
      let ahead = 0;
      if (!r.nested) {
        for (const queue of [ks.nestedQueue, ks.topQueue]) {
          for (let node = queue.head; node; node = node.next) {
            if (node.req === r || ahead >= max) break;
            onWaiter(i, c, node.req);
            ahead++;
          }
        }
      } else {
        for (let node = ks.nestedQueue.head; node; node = node.next) {
          if (ahead >= max) break;
          const w = node.req;
          if (w !== r && w.family !== r.family && claimsCompete(c, node.claim)) {
            onWaiter(i, c, w);
            ahead++;
          }
        }
      }
    });
    return holdersInWay;
  }

  /** Does holder entry e (of another family) stand in the way of claim c? Called only when c does not fit. */
  #entryBlocks(e: Entry<M>, c: LockClaim): boolean {
    switch (c.mode) {
      case 'exclusive':
        return true;
      case 'shared':
        return e.mode === 'exclusive';
      case 'slots':
        return true; // a full key: any occupant leaving would do
    }
  }

  #positionOf(node: QueueNode<M>): number {
    const ks = this.#keyOf(node);
    let pos = node.req.nested ? 0 : ks.nestedQueue.size;
    // The newest waiter (what 'queued' asks about, right after submit) is the tail: no walk, so queueing N waiters
    // on one key costs O(N), not O(N²).
    if (node === node.queue.tail) return pos + node.queue.size;
    for (let n: QueueNode<M> | null = node; n; n = n.prev) pos++;
    return pos;
  }

  #snapshotOf(ks: KeyState<M>): LockSnapshot<M> {
    const holders: HolderSnapshot<M>[] = [];
    for (const e of ks.holders.values()) {
      const h: HolderSnapshot<M> = {
        requestId: e.req.id,
        mode: e.mode,
        fencingToken: e.fencingToken,
        nested: e.nested,
        grantedAt: e.grantedAt,
        meta: e.req.request.meta,
      };
      if (e.slotIndex !== undefined) h.slotIndex = e.slotIndex;
      holders.push(h);
    }
    const waiters: WaiterSnapshot<M>[] = [];
    for (const queue of [ks.nestedQueue, ks.topQueue]) {
      for (const node of queue) {
        const w: WaiterSnapshot<M> = {
          requestId: node.req.id,
          mode: node.claim.mode,
          position: waiters.length + 1,
          since: node.req.since,
          nested: node.req.nested,
          meta: node.req.request.meta,
        };
        if (node.req.priority !== 0) w.priority = node.req.priority;
        waiters.push(w);
      }
    }
    let mode: LockMode | null = null;
    if (ks.holders.size > 0) mode = ks.exclusiveCount > 0 ? 'exclusive' : ks.capacity !== null ? 'slots' : 'shared';
    return { key: ks.key, mode, capacity: ks.capacity, holders, waiters };
  }
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
function validatePools(defs: PoolDefinition[]): Map<string, PoolDefinition> {
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

/** Two waiting claims on one key where granting either may block the other. */
function claimsCompete(a: LockClaim, b: LockClaim): boolean {
  return a.mode === 'exclusive' || b.mode === 'exclusive' || (a.mode === 'slots' && b.mode === 'slots');
}

/** Holder blockers are already in claim order; interleave each claim's waiter blockers after its holders. */
function sortByClaimOrder<M>(claims: readonly LockClaim[], holders: Blocker<M>[], waiters: Blocker<M>[][]): Blocker<M>[] {
  const out: Blocker<M>[] = [];
  let h = 0;
  claims.forEach((c, i) => {
    while (h < holders.length && holders[h]!.key === c.key) out.push(holders[h++]!);
    out.push(...waiters[i]!);
  });
  return out;
}

/**
 * A cycle in `next` (every node has a successor) through `start` if there is one, else the
 * cycle reached by walking from `start`. Listed from its first node, without repeating it.
 */
function cycleThrough<T>(next: Map<T, T[]>, start: T): T[] {
  // Breadth-first from start's successors back to start: the shortest cycle through it.
  const parent = new Map<T, T>();
  const queue: T[] = [];
  for (const s of next.get(start) ?? []) {
    if (s === start) return [start];
    if (!parent.has(s)) {
      parent.set(s, start);
      queue.push(s);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i]!;
    for (const s of next.get(n) ?? []) {
      if (s === start) {
        const path: T[] = [];
        for (let p: T = n; p !== start; p = parent.get(p)!) path.push(p);
        return [start, ...path.reverse()];
      }
      if (!parent.has(s)) {
        parent.set(s, n);
        queue.push(s);
      }
    }
  }
  // start only leads into a cycle elsewhere: walk until a node repeats.
  const seenAt = new Map<T, number>();
  const walk: T[] = [];
  for (let n: T = start; !seenAt.has(n); n = next.get(n)![0]!) {
    seenAt.set(n, walk.length);
    walk.push(n);
  }
  const repeat = next.get(walk[walk.length - 1]!)![0]!;
  return walk.slice(seenAt.get(repeat));
}
