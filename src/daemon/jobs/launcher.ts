/**
 * The one seam through which the daemon starts a job. Two launchers stand behind it: `native` (Linux, the project's
 * N-API addon: no fork of the daemon, the job born in its cgroup, exit seen and signals sent through a pidfd) and
 * `portable` (execa: macOS, Windows, a host without the addon). Chosen once at start-up (`LOCKD_LAUNCHER` forces
 * one) and shown by `lockd status`, `lockd doctor` and the daemon log.
 */
import type { Readable, Writable } from 'node:stream';
import type { JobTree } from './process-tree.js';

export type LauncherName = 'native' | 'portable';

/** A job ready to start: everything resolved while it waited for its locks. */
export interface LaunchSpec {
  readonly runId: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  /** 'pipe': the daemon writes the job's stdin (-i); 'ignore': /dev/null; a descriptor: the caller's own (passed). */
  readonly stdin: 'pipe' | 'ignore' | number;
  /**
   * 'pipe': the daemon reads stdout/stderr; a file descriptor: both go straight there (a --detach run's log); a pair:
   * each to its own descriptor (the relay's pipes, output-relay.ts). Given descriptors stay the caller's to close.
   */
  readonly output: 'pipe' | number | { readonly stdout: number; readonly stderr: number };
  /**
   * System mode: the user the job runs as (uid, primary gid, every group), set in the child before the chdir and
   * the exec. Only for a launcher with `setsIds`; the others get a plan that switches users itself (setpriv).
   */
  readonly identity?: JobIdentity;
  /**
   * How long what is left of the job after its leader exits gets between SIGTERM and SIGKILL (the run's
   * --kill-after). Used by the native launcher's per-job reaper where there is no cgroup (native/reaper.c).
   */
  readonly graceMs?: number;
}

export interface JobIdentity {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /**
   * The command could not be executed after all, reported by the per-job reaper once it has exited (it execs the
   * command in its own child): the run is recorded as a failed start (127/126), as a failure of `launch` would be.
   */
  execFailure?: LaunchFailure;
}

/** A started job. Its whole tree (leader and every descendant) is `tree`. */
export interface LaunchedJob {
  readonly pid: number;
  /** The leader's start time (pid + start time is a process's identity). */
  readonly startTime: string;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves once, when the leader has exited (and been reaped). */
  readonly exited: Promise<ChildEnd>;
  readonly tree: JobTree;
}

/** Why a job could not be started: `code` is the errno name (ENOENT → 127, EACCES/ENOEXEC → 126). */
export interface LaunchFailure {
  code?: string;
  message: string;
}

export interface Launcher {
  readonly name: LauncherName;
  /** One line for status, doctor and the log: what it does on this host (e.g. "clone3 into cgroup, pidfd"). */
  readonly detail: string;
  /** True when `LaunchSpec.identity` is honoured (the native launcher: raw setgroups/setresgid/setresuid). */
  readonly setsIds: boolean;
  /** Start the job, or report why not (possibly asynchronously) through `failed` and return null. */
  launch(spec: LaunchSpec, failed: (e: LaunchFailure) => void): LaunchedJob | null;
}
