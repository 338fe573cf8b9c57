/**
 * Human-friendly durations (every duration option: `--wait 10m`, `--older-than 7d`) and sizes for GC and log
 * caps (`--max-size 10G`). Sizes use binary multiples (K = 1024), like du and ls -h.
 */
import { LockdError } from '../util/errors.js';

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const DURATION_PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
/** Bare seconds: plain decimal digits only, so `0x10`, `1e3`, `-5` and `Infinity` (which Number() takes) are refused. */
const BARE_SECONDS_RE = /^\d+(?:\.\d+)?$/;

/** What every duration option accepts; error messages name it so the grammar is said the same way everywhere. */
export const DURATION_GRAMMAR = 'seconds (90, 1.5) or a number with units (500ms, 90s, 10m, 1h30m, 12h, 7d, 2w)';

/**
 * The one duration grammar of lockd (--wait, --timeout, --kill-after, --ttl, gc --older-than, their LOCKD_* variables
 * and lockd.json keys): bare seconds (`90`, `1.5`), or parts with units, `500ms`, `90s`, `30m`, `12h`, `7d`, `2w`, and
 * combinations like `1h30m`. Case-insensitive. Returns whole milliseconds. `what` names the option in the error.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const s = String(text).trim().toLowerCase();
  let total = 0;
  let at = 0;
  if (BARE_SECONDS_RE.test(s)) {
    total = Number(s) * 1000;
    at = s.length;
  }
  while (at < s.length) {
    DURATION_PART_RE.lastIndex = at;
    const m = DURATION_PART_RE.exec(s);
    if (!m) break;
    total += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
    at = DURATION_PART_RE.lastIndex;
  }
  if (s.length === 0 || at !== s.length || !Number.isFinite(total)) {
    throw new LockdError('usage', `${what} must be ${DURATION_GRAMMAR}, not ${JSON.stringify(text)}`, {
      value: text,
    });
  }
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?$/i;

/** `123` (bytes), `123B`, `1024K`, `500M`, `10G`, `1T` (also `KiB`, `MB`...: all binary); returns whole bytes. */
export function parseSize(text: string): number {
  const m = SIZE_RE.exec(String(text).trim());
  const bytes = m ? Number(m[1]) * SIZE_UNITS[(m[2] ?? m[3] ?? '').toLowerCase()]! : NaN;
  if (!Number.isFinite(bytes) || bytes > Number.MAX_SAFE_INTEGER) {
    throw new LockdError('usage', `invalid size ${JSON.stringify(text)}: use bytes or a number with K, M, G or T, e.g. 500M, 10G`, {
      value: text,
    });
  }
  return Math.floor(bytes);
}
