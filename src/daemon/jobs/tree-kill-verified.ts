/**
 * tree-kill, only where it is the right tool, and only for a verified pid.
 *
 * On Windows a process tree is ended with `taskkill /pid N /T /F`, which is what tree-kill runs there. On Linux and
 * macOS tree-kill is never called: it walks the tree by spawning `ps --ppid` (Linux) or `pgrep -P` (macOS) once per
 * level, then signals every pid that walk listed, by pid alone, after the whole walk. A child that exits meanwhile
 * and whose pid is reused is signalled all the same, against lockd's rule that a pid is trusted only together with its
 * start time. JobTree's own scan (process-tree.ts) finds the same descendants with their start times and signals
 * each after an identity check, and the process group and cgroup kills reach the rest.
 *
 * The pid handed to tree-kill is checked immediately before the call: by pid + start time, or, for a job leader on
 * Windows, by the launcher's held process handle (Windows never gives a pid to a new process while a handle to the
 * old one is open, and libuv holds the child's handle until it has reported the exit; process-tree-windows.ts).
 * Where neither check is possible, nothing is signalled at all.
 */
import treeKill from 'tree-kill';
import { isSameProcessAlive } from '../../util/proc.js';

/** The platforms where JobTree ends an escaped subtree with tree-kill (taskkill /T). */
export const TREE_KILL_PLATFORM = process.platform === 'win32';

/** Bound on one tree-kill run. */
const TREE_KILL_TIMEOUT_MS = 3000;

/**
 * End `pid` and its descendants with tree-kill, if this is a tree-kill platform and `pid` is still the process that
 * `identity` names (its start time, or a check of a held handle). Resolves true when tree-kill reported success; false when it was not called, failed, or
 * did not answer within its bound.
 */
export function treeKillVerified(pid: number, identity: string | (() => boolean), sig: NodeJS.Signals): Promise<boolean> {
  const same = typeof identity === 'function' ? identity() : isSameProcessAlive(pid, identity);
  if (!TREE_KILL_PLATFORM || !same) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), TREE_KILL_TIMEOUT_MS);
    timer.unref();
    try {
      treeKill(pid, sig, (err) => {
        clearTimeout(timer);
        resolve(err === undefined || err === null);
      });
    } catch {
      clearTimeout(timer);
      resolve(false);
    }
  });
}
