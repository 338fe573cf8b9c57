/**
 * `lockd run --supersede KEY [--cancel-running]`: a newer run makes the same user's older runs with the same KEY
 * pointless (a new push to the branch), so they end at once instead of using the board: queued ones never start
 * (reason superseded, exit 77, result.json written); with --cancel-running the running one's tree is stopped too
 * (SIGTERM, its --kill-after grace, SIGKILL) and its result says superseded. Both name the newer run.
 *
 * "Same caller" is the same uid (verified from the socket's peer credentials in system mode), with the same KEY.
 * Not the holder string or a CI project id: those are claims a client makes, and one user's claim must never
 * end another user's job. CI jobs of one project run as the one runner user, so a key that names the project and
 * branch (`--supersede "$GITHUB_REPOSITORY/$GITHUB_REF"`) gives "any caller in the same CI project" without
 * trusting a claim; two projects on one runner pick different keys.
 */
import type { SupersedeTarget } from '../locks/cluster-port.js';

/** A run this daemon supervises, as supersede sees it. */
export interface SupersedableRun extends SupersedeTarget {
  stop(reason: 'supersede', by: string | null): Promise<void>;
}

/** End the runs `newer` supersedes; returns their ids (for the log). */
export function supersedeOlder(runs: Iterable<SupersedableRun>, newer: SupersedableRun): string[] {
  const key = newer.req.supersede;
  if (key === undefined) return [];
  const ended: string[] = [];
  for (const old of runs) {
    if (old === newer || old.req.supersede !== key || old.uid !== newer.uid || old.queuedAt > newer.queuedAt || old.supersededBy !== null) continue;
    const why = `superseded by run ${newer.runId} (--supersede ${key})`;
    if (old.state === 'queued') {
      old.supersededBy = newer.runId;
      void old.cancelQueued('superseded', why);
      ended.push(old.runId);
    } else if (newer.req.cancel_running && (old.state === 'starting' || old.state === 'running')) {
      old.supersededBy = newer.runId;
      void old.stop('supersede', `run ${newer.runId}`);
      ended.push(old.runId);
    }
  }
  return ended;
}

/** What supersede sees of a run re-adopted after a daemon restart (records/adopt.ts): always running. */
export interface AdoptedSupersedable {
  readonly rec: { readonly run_id: string; readonly uid: number | null; readonly supersede?: string };
  readonly ending: Promise<void> | null;
}

/**
 * The re-adopted runs `newer` stops: only with --cancel-running (an adopted run is never queued), same uid, same
 * KEY, the rule above.
 */
export function adoptedToSupersede<T extends AdoptedSupersedable>(adopted: Iterable<T>, newer: Pick<SupersedableRun, 'uid' | 'req'>): T[] {
  const key = newer.req.supersede;
  if (key === undefined || !newer.req.cancel_running) return [];
  return [...adopted].filter((a) => a.ending === null && a.rec.supersede === key && a.rec.uid === newer.uid);
}
