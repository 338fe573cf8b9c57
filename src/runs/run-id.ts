/**
 * Run ids and run directories.
 *
 * A generated run id is `YYMMDD-HHMM-xxxx` (UTC minute + random hex), so ids
 * sort roughly by creation time and a human can read when a run started from
 * its directory name. Uniqueness does not rely on the randomness alone: the
 * run directory is created with a NON-recursive mkdir, which fails with EEXIST
 * when another run (in this daemon or another daemon sharing the root) already
 * took the id; we then simply draw again.
 */
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdir as mkdirAsync } from 'node:fs/promises';
import path from 'node:path';
import { LockdError } from '../util/errors.js';

/** Caller-chosen ids: a safe single path component, never `.`/`..` or hidden. */
const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The time prefix of a generated id: YYMMDD-HHMM. */
const GENERATED_PREFIX_RE = /^(\d{2})(\d{2})(\d{2})-(\d{2})(\d{2})(?:-|$)/;

/** Hex digits of the random suffix, normally and once a minute gets crowded. */
const NARROW_SUFFIX_HEX = 4;
const WIDE_SUFFIX_HEX = 6;
/** Widen to 6 hex once this many collisions happened within one minute (per root). */
const CROWDED_MINUTE_COLLISIONS = 16;
/** Within one call, widen after this many consecutive collisions, whatever the minute says. */
const WIDEN_AFTER_ATTEMPTS = 4;
/** Past this many attempts use 8 hex; past MAX_ATTEMPTS give up (something is badly wrong). */
const WIDEST_AFTER_ATTEMPTS = 24;
const MAX_ATTEMPTS = 64;

export interface CreateRunDirOptions {
  /** Clock used for the id's time part (tests pin it to force one minute). */
  now?: () => Date;
  /** Random source for the suffix (tests force collisions with it). */
  randomBytes?: (size: number) => Buffer;
  /**
   * mkdir with synchronous calls (no thread-pool trip on the run's start path): for the daemon's own state dir only,
   * as for the records written there (runs/atomic-write.ts, `blocking`); never for a runs root a caller chose.
   */
  blocking?: boolean;
}

export interface CreatedRunDir {
  runId: string;
  /** Absolute path of the new, empty run directory. */
  dir: string;
}

/** True when `s` can be used as a run id (and thus as a directory name). */
export function isValidRunId(s: unknown): s is string {
  return typeof s === 'string' && RUN_ID_RE.test(s) && !s.includes('..');
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `YYMMDD-HHMM` of `now` in UTC. */
export function runIdMinutePrefix(now: Date): string {
  return `${pad2(now.getUTCFullYear() % 100) + pad2(now.getUTCMonth() + 1) + pad2(now.getUTCDate())}-${pad2(now.getUTCHours())}${pad2(now.getUTCMinutes())}`;
}

function randomHex(digits: number, source: (size: number) => Buffer): string {
  return source(Math.ceil(digits / 2))
    .toString('hex')
    .slice(0, digits);
}

/** A fresh run id `YYMMDD-HHMM-xxxx` (UTC). `suffixHex` widens the random part. */
export function newRunId(now: Date = new Date(), suffixHex: number = NARROW_SUFFIX_HEX): string {
  return `${runIdMinutePrefix(now)}-${randomHex(suffixHex, cryptoRandomBytes)}`;
}

/**
 * The UTC start of the minute encoded in a generated run id, in ms since the
 * epoch, or null for ids that do not start with a `YYMMDD-HHMM` prefix
 * (caller-chosen ids). Years are taken as 20YY.
 */
export function parseRunIdTime(runId: string): number | null {
  const m = GENERATED_PREFIX_RE.exec(runId);
  if (!m) return null;
  const [year, month, day, hour, minute] = m.slice(1).map(Number) as [number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59) return null;
  const ms = Date.UTC(2000 + year, month - 1, day, hour, minute);
  // Reject dates that rolled over (e.g. Feb 31st) so garbage does not sort as a real time.
  if (new Date(ms).getUTCDate() !== day) return null;
  return ms;
}

/**
 * Collisions seen per `<root>\0<minute>` in this process. Only the current
 * minute matters, so the map is reset whenever the minute changes; it never
 * grows past a handful of entries.
 */
let collisionMinute = '';
const collisionsByRoot = new Map<string, number>();

function noteCollision(root: string, minute: string): void {
  if (minute !== collisionMinute) {
    collisionMinute = minute;
    collisionsByRoot.clear();
  }
  collisionsByRoot.set(root, (collisionsByRoot.get(root) ?? 0) + 1);
}

function crowdedMinute(root: string, minute: string): boolean {
  return minute === collisionMinute && (collisionsByRoot.get(root) ?? 0) >= CROWDED_MINUTE_COLLISIONS;
}

function suffixDigitsFor(attempt: number, crowded: boolean): number {
  if (attempt >= WIDEST_AFTER_ATTEMPTS) return 8;
  if (crowded || attempt >= WIDEN_AFTER_ATTEMPTS) return WIDE_SUFFIX_HEX;
  return NARROW_SUFFIX_HEX;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * Create `<runsRoot>/<runId>/` and return the id and the absolute directory.
 *
 * With `requestedId` the caller chose the id: it must be valid and unused
 * (`invalid_run_id` / `run_id_exists`). Otherwise an id is generated and
 * regenerated on EEXIST until a free one is found.
 */
export async function createRunDir(runsRoot: string, requestedId?: string, options: CreateRunDirOptions = {}): Promise<CreatedRunDir> {
  const root = path.resolve(runsRoot);
  const mkdir = options.blocking
    ? async (dir: string, opts?: { recursive: true }): Promise<void> => {
        mkdirSync(dir, opts);
      }
    : async (dir: string, opts?: { recursive: true }): Promise<void> => {
        await mkdirAsync(dir, opts);
      };
  // No `mkdir -p` of the root first: it is there for every run but the first, so the run's own mkdir tries first
  // and an ENOENT creates the root (one thread-pool round trip less on each run's start path).

  if (requestedId !== undefined) {
    if (!isValidRunId(requestedId)) {
      throw new LockdError('invalid_run_id', `invalid run id ${JSON.stringify(requestedId)}: use 1-128 of [A-Za-z0-9._-], starting with a letter or digit, without ".."`, {
        run_id: requestedId,
      });
    }
    const dir = path.join(root, requestedId);
    try {
      await mkdir(dir).catch(async (err: unknown) => {
        if (errnoCode(err) !== 'ENOENT') throw err;
        await mkdir(root, { recursive: true });
        await mkdir(dir);
      });
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') {
        throw new LockdError('run_id_exists', `run id ${requestedId} already exists in ${root}`, { run_id: requestedId, dir });
      }
      throw err;
    }
    return { runId: requestedId, dir };
  }

  const now = options.now ?? (() => new Date());
  const random = options.randomBytes ?? cryptoRandomBytes;
  let rootRecreated = false;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const minute = runIdMinutePrefix(now());
    const digits = suffixDigitsFor(attempt, crowdedMinute(root, minute));
    const runId = `${minute}-${randomHex(digits, random)}`;
    const dir = path.join(root, runId);
    try {
      await mkdir(dir);
      return { runId, dir };
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') {
        noteCollision(root, minute);
        continue;
      }
      // No root yet (the first run), or it vanished (e.g. a user removed the
      // runs folder): create it once, then let errors surface.
      if (code === 'ENOENT' && !rootRecreated) {
        rootRecreated = true;
        await mkdir(root, { recursive: true });
        continue;
      }
      throw err;
    }
  }
  throw new LockdError('run_id_unavailable', `could not find a free run id in ${root} after ${MAX_ATTEMPTS} attempts`, { root });
}
