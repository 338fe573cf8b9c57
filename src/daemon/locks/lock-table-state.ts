/**
 * The lock table's internal state: requests, families, holder entries, per-key queues and slot allocation.
 * Only the lock table's own files use these (lock-table.ts and the admission, claim-fit, blockers and deadlock
 * functions it calls); they are plain data structures, the rules live in those files.
 */
import type { Grant, LockClaim, LockMode, LockRequest, PoolClaim, PoolDefinition } from './lock-table-types.js';

/** A top-level request and all nested requests under it; acts as one lock owner. */
export interface Family {
  /** The top-level request's id (it may have left the table while nested ones remain). */
  readonly name: string;
}

export interface Req<M> {
  readonly request: LockRequest<M>;
  readonly id: string;
  /** Arrival order, unique and increasing. */
  readonly seq: number;
  readonly since: number;
  readonly family: Family;
  readonly nested: boolean;
  /**
   * The request it was nested under (null for a top-level one). Within a family only a request's ancestors are
   * transparent to it: a sibling (two runs under one hold, two children of one run) is another holder whose mode
   * it must respect, or the hold would let two runs into one exclusive lock.
   */
  readonly parentReq: Req<M> | null;
  /** Validated copy, so a caller mutating its request cannot corrupt the table. */
  readonly claims: readonly LockClaim[];
  /** Validated copy of the pool claims. */
  readonly pools: readonly PoolClaim[];
  readonly priority: number;
  state: 'waiting' | 'holding';
  /** While waiting: this request's node in each claimed key's queue. */
  nodes: QueueNode<M>[];
  /** While waiting: per pool claim, its node in the queue of every candidate member (in the pool's member order). */
  memberNodes: QueueNode<M>[][];
  /** While holding: one entry per claim. */
  entries: Entry<M>[];
  grant: Grant<M> | null;
}

export interface Entry<M> {
  readonly req: Req<M>;
  readonly keyState: KeyState<M>;
  readonly mode: LockMode;
  readonly slotIndex: number | undefined;
  readonly fencingToken: number;
  readonly nested: boolean;
  readonly grantedAt: number;
}

/** What one family holds on one key: entry counts plus the slot and token its entries share. */
export interface FamilyTally {
  entries: number;
  exclusive: number;
  readonly slotIndex: number | undefined;
  readonly fencingToken: number;
}

export interface QueueNode<M> {
  readonly req: Req<M>;
  readonly claim: LockClaim;
  readonly queue: WaitQueue<M>;
  prev: QueueNode<M> | null;
  next: QueueNode<M> | null;
}

/** Doubly linked FIFO so a cancelled waiter leaves in O(1). */
export class WaitQueue<M> {
  head: QueueNode<M> | null = null;
  tail: QueueNode<M> | null = null;
  size = 0;

  push(req: Req<M>, claim: LockClaim): QueueNode<M> {
    const node: QueueNode<M> = { req, claim, queue: this, prev: this.tail, next: null };
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.size++;
    return node;
  }

  /**
   * Insert in (priority descending, arrival ascending) order. Walks back from the tail, so the usual case (same
   * priority, newest arrival) is O(1).
   */
  insertOrdered(req: Req<M>, claim: LockClaim): QueueNode<M> {
    let after = this.tail;
    while (after && !comesBefore(after.req, req)) after = after.prev;
    const node: QueueNode<M> = { req, claim, queue: this, prev: after, next: after ? after.next : this.head };
    if (node.next) node.next.prev = node;
    else this.tail = node;
    if (after) after.next = node;
    else this.head = node;
    this.size++;
    return node;
  }

  remove(node: QueueNode<M>): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = null;
    this.size--;
  }

  *[Symbol.iterator](): IterableIterator<QueueNode<M>> {
    for (let n = this.head; n; n = n.next) yield n;
  }
}

/** Queue order of top-level requests: higher priority first, then earlier arrival. */
export function comesBefore<M>(a: Req<M>, b: Req<M>): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq;
}

/** Binary min-heap; used for free slot indices and for grant candidates by arrival. */
export class MinHeap<T> {
  readonly #items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const a = this.#items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): T | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Hands out the lowest free slot index: freed ones (heap) below the never-used frontier. */
export class SlotAllocator {
  #frontier = 0;
  readonly #freed = new MinHeap<number>((a, b) => a < b);

  take(): number {
    return this.#freed.size > 0 ? this.#freed.pop()! : this.#frontier++;
  }

  give(index: number): void {
    this.#freed.push(index);
  }
}

export class KeyState<M> {
  readonly holders = new Map<Req<M>, Entry<M>>();
  exclusiveCount = 0;
  /** Per family holding this key; for slots keys its size is the number of occupied slots. */
  readonly families = new Map<Family, FamilyTally>();
  readonly nestedQueue = new WaitQueue<M>();
  readonly topQueue = new WaitQueue<M>();
  readonly slots: SlotAllocator | null;

  constructor(
    readonly key: string,
    /** Slot count for slots keys, null for exclusive/shared keys. */
    readonly capacity: number | null,
  ) {
    this.slots = capacity === null ? null : new SlotAllocator();
  }

  get idle(): boolean {
    return this.holders.size === 0 && this.nestedQueue.size === 0 && this.topQueue.size === 0;
  }
}

/** Either every family must release (`all`) or any one of them (`any`: a full slots key). */
export interface BlockGroup {
  readonly need: 'all' | 'any';
  readonly families: Family[];
}

/** A hypothetical grant: what its entries would add to each key, for deadlock checks. */
export type VirtualGrant<M> = { req: Req<M>; byKey: Map<string, LockClaim> };

/** What the functions outside lock-table.ts read (and admission's pool helpers look up); the table owns it. */
export interface TableState<M> {
  readonly requests: Map<string, Req<M>>;
  readonly keys: Map<string, KeyState<M>>;
  /** All waiting nested requests: the only requests that can take part in a deadlock. */
  readonly nestedWaiting: Set<Req<M>>;
  pools: Map<string, PoolDefinition>;
  readonly maxWaiterBlockers: number;
}

/** The key a queue node waits on (it exists while anyone waits on it). */
export function keyOf<M>(st: TableState<M>, node: QueueNode<M>): KeyState<M> {
  return st.keys.get(node.claim.key)!;
}
