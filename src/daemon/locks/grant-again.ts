/**
 * Granting a record's locks again after a restart (an adopted --detach run, a restored hold), on the very slots it
 * had. A job started with `LOCKD_SLOT_<name>=k` keeps using slot k whatever the new daemon thinks, and a hold's
 * owner was told its slot too, so the table must give slot k again, not the lowest free one: the free slots below
 * k are filled with placeholder requests for the moment of the grant, then handed back.
 */
import type { Grant, LockClaim, LockTable } from './lock-table.js';

export interface RecordedClaim extends LockClaim {
  /** The slot the record was granted before (slots claims only). */
  slot_index?: number;
}

export type GrantAgainResult<M> = { kind: 'granted'; grant: Grant<M> } | { kind: 'slot_taken'; key: string; slot: number } | { kind: 'taken' };

export function grantAgain<M>(table: LockTable<M>, req: { id: string; claims: RecordedClaim[]; meta: M; parent?: string }): GrantAgainResult<M> {
  const placeholders: string[] = [];
  const handBack = () => {
    for (const id of placeholders) table.release(id);
  };
  let n = 0;
  for (const c of req.claims) {
    if (c.mode !== 'slots' || c.slot_index === undefined || !c.slots) continue;
    for (;;) {
      const id = `${req.id}~slot-placeholder-${n++}`;
      const res = table.submit({ id, claims: [{ key: c.key, mode: 'slots', slots: c.slots }], meta: req.meta });
      if (res.kind !== 'granted') {
        if (res.kind === 'queued') table.cancel(id);
        break; // full: the grant below fails and says so
      }
      const got = res.grant.claims[0]!.slotIndex ?? 0;
      if (got < c.slot_index) {
        placeholders.push(id);
        continue;
      }
      table.release(id);
      if (got > c.slot_index) {
        handBack();
        return { kind: 'slot_taken', key: c.key, slot: c.slot_index };
      }
      break;
    }
  }
  const claims: LockClaim[] = req.claims.map((c) => ({ key: c.key, mode: c.mode, ...(c.mode === 'slots' && c.slots ? { slots: c.slots } : {}) }));
  const res = table.submit({ id: req.id, claims, meta: req.meta, ...(req.parent ? { parent: req.parent } : {}) });
  handBack();
  if (res.kind === 'granted') return { kind: 'granted', grant: res.grant };
  if (res.kind === 'queued') table.cancel(req.id);
  return { kind: 'taken' };
}
