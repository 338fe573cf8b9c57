/**
 * A job's cgroup v2 (Linux, optional): `<our own cgroup>/lockd/<name>`, on the cgroup2 mount found in
 * /proc/self/mountinfo (both the unified layout at /sys/fs/cgroup and the hybrid one at /sys/fs/cgroup/unified).
 * Membership is inherited by every fork and cannot be left without write access to a cgroup.procs file, so the
 * cgroup sees a job's escapees that the process group and the ppid chain lose; `cgroup.kill` ends them all at once.
 */
import { mkdirSync, openSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync, accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSameProcessAlive, isValidPid, processStartTimeSync } from '../../util/proc.js';

const IS_LINUX = process.platform === 'linux';

// ---------------------------------------------------------------------------
// cgroup v2 (Linux, optional)

/**
 * Where job cgroups are created: `<our own cgroup>/lockd/d-<daemon pid>-<start time>/`, on the cgroup2 mount
 * (found in /proc/self/mountinfo, so both the unified layout at /sys/fs/cgroup and the hybrid one at
 * /sys/fs/cgroup/unified work). One subtree per daemon process: a daemon starting later can tell a dead daemon's
 * leftovers (its process is gone) from a live one's, and remove them. Detected once; null when there is no cgroup2
 * mount or we cannot write there.
 */
let cgroupBaseCache: string | null | undefined;
let cgroupRootCache: string | null = null;

function cgroupBase(): string | null {
  if (cgroupBaseCache === undefined) {
    cgroupRootCache = detectCgroupBase();
    cgroupBaseCache = cgroupRootCache === null ? null : ownSubtree(cgroupRootCache);
  }
  return cgroupBaseCache;
}

/** This daemon's own subtree under the lockd root (created now), or null when it cannot be. */
function ownSubtree(root: string): string | null {
  const dir = join(root, `d-${process.pid}-${processStartTimeSync(process.pid) ?? '0'}`);
  try {
    mkdirSync(dir, { recursive: true });
    return dir;
  } catch {
    return null;
  }
}

function detectCgroupBase(): string | null {
  if (!IS_LINUX) return null;
  // Off by choice (a host whose cgroups another manager owns; the tests of the no-cgroup path): every job is then
  // found and killed by the other means, and the native launcher starts each under its own reaper.
  if (process.env.LOCKD_CGROUPS === 'off') return null;
  try {
    const own = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    if (own === undefined) return null;
    const ownPath = own.slice(3).trim();
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [left, right] = line.split(' - ');
      if (right === undefined || !right.startsWith('cgroup2 ')) continue;
      const fields = left!.split(' ');
      const mountRoot = unescapeMountPath(fields[3] ?? '');
      const mountPoint = unescapeMountPath(fields[4] ?? '');
      if (mountRoot !== '/' && ownPath !== mountRoot && !ownPath.startsWith(`${mountRoot}/`)) continue;
      const relative = mountRoot === '/' ? ownPath : ownPath.slice(mountRoot.length);
      const ownDir = join(mountPoint, relative);
      if (!existsSync(join(ownDir, 'cgroup.controllers'))) continue;
      const base = join(ownDir, 'lockd');
      mkdirSync(base, { recursive: true });
      // Moving a process needs write access to cgroup.procs of the common ancestor (our own cgroup).
      accessSync(join(ownDir, 'cgroup.procs'), fsConstants.W_OK);
      accessSync(base, fsConstants.W_OK);
      return base;
    }
  } catch {
    // Read-only cgroupfs, no permission, no /proc: fall back to the other means.
  }
  return null;
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function rmdirQuietly(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // populated or already gone: nothing to do
  }
}

export class JobCgroup {
  private constructor(readonly dir: string) {}

  /**
   * The job's cgroup, `<base>/<runId>-<pid>`, with `pid` moved into it when
   * `moveLeader`. An existing one (same run and leader: a restarted daemon) is
   * reattached as is. Null, silently, when cgroups cannot be used.
   */
  static adopt(runId: string, pid: number, moveLeader: boolean): JobCgroup | null {
    const base = cgroupBase();
    if (base === null) return null;
    const dir = join(base, JobCgroup.nameOf(runId, pid));
    // A restarted daemon re-adopting a run finds its cgroup in the old daemon's subtree (named by run and pid by the
    // portable launcher, by run alone by the native one, which creates it before the job has a pid).
    const earlier = moveLeader ? null : (findJobCgroup(JobCgroup.nameOf(runId, pid)) ?? findJobCgroup(JobCgroup.birthNameOf(runId)));
    if (earlier) return new JobCgroup(earlier);
    let created = false;
    try {
      mkdirSync(dir);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return null;
    }
    if (!moveLeader) {
      if (!created) return new JobCgroup(dir);
      rmdirQuietly(dir);
      return null;
    }
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      return new JobCgroup(dir);
    } catch (err) {
      if (created) rmdirQuietly(dir);
      // ESRCH: this child is already gone. Anything else: cgroups do not work here; stop trying.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') cgroupBaseCache = null;
      return null;
    }
  }

  /** The job's cgroup directory, created (not joined yet) for an asynchronous move; null when cgroups are unusable. */
  static async create(runId: string, pid: number): Promise<JobCgroup | null> {
    const base = cgroupBase();
    if (base === null) return null;
    const dir = join(base, JobCgroup.nameOf(runId, pid));
    try {
      await mkdir(dir);
    } catch {
      // EEXIST: a cgroup of this run and pid is from another daemon's life; not ours to reuse for a new child.
      return null;
    }
    return new JobCgroup(dir);
  }

  /**
   * The cgroup a job is born into (native launcher: clone3 with CLONE_INTO_CGROUP), created now, before the job has a
   * pid, so it is named by the run alone; with a descriptor open on it for the clone. Null when cgroups are unusable.
   */
  static forBirth(runId: string): { cgroup: JobCgroup; fd: number } | null {
    const base = cgroupBase();
    if (base === null) return null;
    const dir = join(base, JobCgroup.birthNameOf(runId));
    try {
      mkdirSync(dir);
    } catch {
      // EEXIST: another life's cgroup of this run; a new job is never put with whatever is in it.
      return null;
    }
    try {
      return { cgroup: new JobCgroup(dir), fd: openSync(dir, 'r') };
    } catch {
      rmdirQuietly(dir);
      return null;
    }
  }

  static birthNameOf(runId: string): string {
    return runId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  }

  static nameOf(runId: string, pid: number): string {
    return `${runId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80)}-${pid}`;
  }

  /**
   * Move `pid` into this cgroup through the thread pool. False when it did not happen: the process is gone (ESRCH),
   * or cgroups do not work here after all (then they are not tried again).
   */
  async moveAsync(pid: number): Promise<boolean> {
    try {
      await writeFile(join(this.dir, 'cgroup.procs'), String(pid));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') cgroupBaseCache = null;
      return false;
    }
  }

  /** True while any live process is in the cgroup (exited tasks leave it at exit, before being reaped). */
  populatedSync(): boolean {
    try {
      return /^populated 1$/m.test(readFileSync(join(this.dir, 'cgroup.events'), 'utf8'));
    } catch {
      return false;
    }
  }

  async procs(): Promise<number[]> {
    try {
      return (await readFile(join(this.dir, 'cgroup.procs'), 'utf8'))
        .split('\n')
        .filter((l) => l !== '')
        .map(Number)
        .filter(isValidPid);
    } catch {
      return [];
    }
  }

  /** SIGKILL every process in the cgroup at once (cgroup.kill, Linux ≥ 5.14). False when unsupported. */
  killAll(): boolean {
    try {
      writeFileSync(join(this.dir, 'cgroup.kill'), '1');
      return true;
    } catch {
      return false;
    }
  }

  /** rmdir the cgroup; false while it still has processes. */
  remove(): boolean {
    try {
      rmdirSync(this.dir);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }
}

/** Test hook: whether job cgroups can be used on this host (detected once). */
export function cgroupsAvailable(): boolean {
  return cgroupBase() !== null;
}

/** A job cgroup of this name in any daemon's subtree (or, from lockd 0.1, directly under the root). */
function findJobCgroup(name: string): string | null {
  const root = cgroupRootCache;
  if (root === null) return null;
  const candidates = [join(root, name)];
  try {
    for (const d of readdirSync(root)) if (d.startsWith('d-')) candidates.push(join(root, d, name));
  } catch {
    return null;
  }
  return candidates.find((c) => existsSync(join(c, 'cgroup.procs'))) ?? null;
}

/** rmdir one job cgroup if no process is in it; false when it is populated, gone, or not a cgroup. */
function removeIfEmpty(dir: string): boolean {
  try {
    if (!statSync(dir).isDirectory() || /^populated 1$/m.test(readFileSync(join(dir, 'cgroup.events'), 'utf8'))) return false;
    rmdirSync(dir);
    return true;
  } catch {
    // not a cgroup of ours, or it gained a process meanwhile: leave it
    return false;
  }
}

/** rmdir every empty cgroup in `dir` (not recursive: job cgroups have no children); how many went. */
function removeEmptyChildren(dir: string): number {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  return names.filter((name) => removeIfEmpty(join(dir, name))).length;
}

/**
 * Remove what killed daemons left under `<own cgroup>/lockd/`: in the subtree of every daemon whose process is
 * gone, each empty job cgroup, then the subtree itself once empty; and lockd 0.1's flat job cgroups once empty. Run
 * at start-up, after reconcile has re-adopted or stopped every journaled run; a populated cgroup still holds a job's
 * processes and is left to reconcile's tree kills and the escapee sweep. Returns how many cgroups were removed.
 */
export function removeEmptyJobCgroups(): number {
  if (cgroupBase() === null || cgroupRootCache === null) return 0;
  const root = cgroupRootCache;
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return 0;
  }
  for (const name of names) {
    const dir = join(root, name);
    const m = /^d-(\d+)-(.*)$/.exec(name);
    if (!m) {
      // lockd 0.1 put job cgroups (<run id>-<pid>) here directly, with no daemon to tell live ones by
      if (/-\d+$/.test(name) && removeIfEmpty(dir)) removed++;
      continue;
    }
    if (dir === cgroupBaseCache || isSameProcessAlive(Number(m[1]), m[2]!)) continue;
    removed += removeEmptyChildren(dir);
    try {
      rmdirSync(dir);
      removed++;
    } catch {
      // still holds a populated job cgroup
    }
  }
  return removed;
}

/** At a clean exit: this daemon's subtree goes if no job cgroup is left in it (a detached run's keeps it). */
export function removeOwnCgroupSubtree(): void {
  if (!cgroupBaseCache) return;
  try {
    rmdirSync(cgroupBaseCache);
    cgroupBaseCache = undefined;
  } catch {
    // a job cgroup is still in it
  }
}

/** Test hook: the directory job cgroups are created in, or null without usable cgroups. */
export function jobCgroupBase(): string | null {
  return cgroupBase();
}
