/** Durations and times as people read them in a terminal. */
import { ETA_TEXT, fill } from '../../client/run-text.js';

/** 850 → "0.9s", 61_000 → "1m 01s", 7_380_000 → "2h 03m", 200_000_000 → "2d 7h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** An estimate: "~2m 10s", "now" when it is due, "unknown" without one. */
export function formatEstimate(ms: number | null): string {
  if (ms === null) return ETA_TEXT.unknown;
  if (ms < 1000) return ETA_TEXT.soon;
  return fill(ETA_TEXT.estimate, { duration: formatDuration(ms) });
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local wall-clock time: "14:03:07" today, "2025-02-21 14:03" otherwise. */
export function formatClock(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}
