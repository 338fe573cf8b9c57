/** One `lockd events` line for people: time, what happened, to whom, on which locks, and the details. */
import { basename } from 'node:path';
import type { LockdEvent } from '../../protocol/messages.js';
import { renderHolder } from '../../client/holder.js';
import { formatClock } from './format.js';
import type { Style } from './style.js';

const BAD = new Set(['not_obtained', 'cancelled', 'killed', 'hold_expired']);
const GOOD = new Set(['granted', 'started', 'hold_acquired']);

function detailText(detail: Record<string, unknown> | undefined): string {
  if (!detail) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(detail)) {
    if (v === null || v === undefined) continue;
    const shown = k === 'holder' && typeof v === 'string' ? renderHolder(v) : typeof v === 'string' ? v : JSON.stringify(v);
    parts.push(`${k}=${/\s/.test(shown) ? JSON.stringify(shown) : shown}`);
  }
  return parts.join(' ');
}

export function renderEvent(e: LockdEvent, style: Style, now = new Date()): string {
  const padded = e.type.padEnd(13);
  const type = BAD.has(e.type) ? style.red(padded) : GOOD.has(e.type) ? style.green(padded) : style.cyan(padded);
  // Lock files by name: <root>/.locks/qemu.lock → qemu.lock; the full paths are in --json.
  const locks = e.locks.length ? e.locks.map((k) => basename(k)).join(',') : '-';
  const detail = detailText(e.detail);
  return `${style.dim(formatClock(e.time_utc, now))} ${type} ${e.id || '-'} ${locks}${detail ? ` ${style.dim(detail)}` : ''}\n`;
}
