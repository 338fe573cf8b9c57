/**
 * Estimated waits for the queue of one lock, from the typical duration of past runs under it. A small
 * simulation of the lock table's rules for that key — strict FIFO among waiters, exclusive needs the key to
 * itself, shared runs beside shared, a slot waiter takes the first slot that frees — with every holder and every
 * waiter assumed to take the typical time (a holder: what it has left of it). Pure, so it is tested directly.
 *
 * Unknown is null, never a guess: with no recorded runs, or when the wait depends on an explicit hold (its end
 * is up to a person or a CI job, not a run's typical length), the estimate is null.
 */
import type { LockMode } from '../../protocol/messages.js';
import type { LockSnapshot } from './lock-table-types.js';

export interface EstimateHolder {
  mode: LockMode;
  /** ms until it is expected to let go; null when unknown (an explicit hold). */
  remainingMs: number | null;
}

export interface EstimateWaiter {
  mode: LockMode;
}

type Maybe = number | null;

function maxOf(...xs: Maybe[]): Maybe {
  let out = 0;
  for (const x of xs) {
    if (x === null) return null;
    out = Math.max(out, x);
  }
  return out;
}

function plus(a: Maybe, b: Maybe): Maybe {
  return a === null || b === null ? null : a + b;
}

/**
 * ms from now until each waiter (in queue order) is expected to be granted this key.
 * `capacity` is the slot count of a slots key, null for exclusive/shared keys.
 */
export function estimateWaits(capacity: number | null, holders: EstimateHolder[], waiters: EstimateWaiter[], typicalMs: number | null): Maybe[] {
  if (waiters.length === 0) return [];
  if (typicalMs === null) return waiters.map(() => null);
  return capacity !== null ? slotWaits(capacity, holders, waiters, typicalMs) : rwWaits(holders, waiters, typicalMs);
}

function rwWaits(holders: EstimateHolder[], waiters: EstimateWaiter[], typical: number): Maybe[] {
  // busyUntil: when everything granted so far has let go; exclusiveUntil: when the last exclusive one has.
  let busyUntil: Maybe = maxOf(...holders.map((h) => h.remainingMs));
  let exclusiveUntil: Maybe = maxOf(...holders.filter((h) => h.mode === 'exclusive').map((h) => h.remainingMs));
  let prevStart: Maybe = 0;
  const out: Maybe[] = [];
  for (const w of waiters) {
    // FIFO: nobody is granted before the waiter ahead of it.
    const start: Maybe = w.mode === 'exclusive' ? maxOf(prevStart, busyUntil) : maxOf(prevStart, exclusiveUntil);
    const end = plus(start, typical);
    out.push(start);
    busyUntil = maxOf(busyUntil, end);
    if (w.mode === 'exclusive') exclusiveUntil = end;
    prevStart = start;
  }
  return out;
}

function slotWaits(capacity: number, holders: EstimateHolder[], waiters: EstimateWaiter[], typical: number): Maybe[] {
  // Free time of each slot; Infinity stands for "unknown" so a known slot is still preferred.
  const slots: number[] = [];
  for (const h of holders.slice(0, capacity)) slots.push(h.remainingMs ?? Infinity);
  while (slots.length < capacity) slots.push(0);
  let prevStart = 0;
  const out: Maybe[] = [];
  for (let i = 0; i < waiters.length; i++) {
    let best = 0;
    for (let s = 1; s < slots.length; s++) if (slots[s]! < slots[best]!) best = s;
    const start = Math.max(prevStart, slots[best]!);
    if (!Number.isFinite(start)) {
      // Every slot is held by someone whose end is unknown: so is everyone's after this.
      for (; i < waiters.length; i++) out.push(null);
      break;
    }
    out.push(start);
    slots[best] = start + typical;
    prevStart = start;
  }
  return out;
}

/**
 * The estimated waits of one key's waiters (queue order), from the table's snapshot of it: what `lockd status`
 * shows and what a waiting run's progress lines say. A family's nested entries share its slot and end with it, so
 * the top-level holders are what the queue waits on; `endsByItself` says which holders are expected to take the
 * typical time (runs), as opposed to an explicit hold, which ends when its owner says so.
 */
export function snapshotEtas<M>(snap: LockSnapshot<M>, typical: number | null, now: number, endsByItself: (meta: M) => boolean): Maybe[] {
  const top = snap.holders.filter((h) => !h.nested);
  return estimateWaits(
    snap.capacity,
    (top.length ? top : snap.holders).map((h) => ({
      mode: h.mode,
      remainingMs: endsByItself(h.meta) && typical !== null ? Math.max(0, typical - (now - h.grantedAt)) : null,
    })),
    snap.waiters.map((w) => ({ mode: w.mode })),
    typical,
  );
}
