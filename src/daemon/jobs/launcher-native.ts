/**
 * The native launcher (Linux): the project's N-API addon (native/launcher.c) starts the job without copying the
 * daemon's address space (clone3 with CLONE_VM|CLONE_VFORK, as posix_spawn does), in its own session, born inside its
 * job cgroup (CLONE_INTO_CGROUP) where the host gives one; exit is watched and the leader signalled through a pidfd,
 * so a reused pid is never signalled. PATH is searched here, in the job's own environment (as Node does for
 * `spawn` with `env`), and the child tries each candidate in order, as execvp would.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { loadNative } from '../../util/peercred.js';
import { processStartTimeSync } from '../../util/proc.js';
import { JobCgroup } from './cgroup.js';
import { cgroupsAvailable, JobTree } from './process-tree.js';
import type { ChildEnd, LaunchedJob, LaunchFailure, Launcher, LaunchSpec } from './launcher.js';
import { parseReaperReport, reaperArgv, reaperPath } from './reaper.js';

/** What native/launcher.c exports (on Linux builds of the addon). */
export interface NativeLauncherApi {
  pipe(): [number, number];
  spawn(
    opts: {
      candidates: string[];
      argv: string[];
      envp: string[];
      cwd: [string];
      stdio: [number, number, number];
      cgroupFd: number;
      /** Becomes the child's fd 3 (lockd-reaper's report pipe). */
      reportFd?: number;
      ids?: { uid: number; gid: number; groups: number[] };
    },
    onExit: (code: number | null, signo: number | null) => void,
  ): { pid: number; handle: object; inCgroup: boolean; via: string };
  signal(handle: object, signo: number): boolean;
}

export type NativeLoad = { ok: true; launcher: Launcher } | { ok: false; reason: string };

export function loadNativeLauncher(): NativeLoad {
  if (process.platform !== 'linux') return { ok: false, reason: `the native launcher is Linux-only (this is ${process.platform})` };
  const addon = loadNative() as (ReturnType<typeof loadNative> & Partial<NativeLauncherApi>) | null;
  if (addon === null) return { ok: false, reason: 'the native addon is not built and no prebuilt binary loads here' };
  if (typeof addon.spawn !== 'function' || typeof addon.pipe !== 'function' || typeof addon.signal !== 'function') {
    return { ok: false, reason: 'the native addon was built without the launcher (rebuild it: npm run build:native)' };
  }
  return { ok: true, launcher: new NativeLauncher(addon as NativeLauncherApi) };
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

export class NativeLauncher implements Launcher {
  readonly name = 'native' as const;
  readonly setsIds = true;
  readonly detail: string;

  constructor(private readonly api: NativeLauncherApi) {
    this.detail = cgroupsAvailable()
      ? 'clone3 (no fork), born in its job cgroup, pidfd exit and signals'
      : reaperPath()
        ? 'clone3 (no fork), pidfd exit and signals; no writable cgroup v2 here: each job under its own subreaper (lockd-reaper)'
        : 'clone3 (no fork), pidfd exit and signals; no writable cgroup v2 here and no lockd-reaper binary';
  }

  launch(spec: LaunchSpec, failed: (e: LaunchFailure) => void): LaunchedJob | null {
    const opened: number[] = [];
    const close = (fd: number): void => {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    };
    let parentEnds: { stdin: number | null; stdout: number | null; stderr: number | null } = { stdin: null, stdout: null, stderr: null };
    let birth: { cgroup: JobCgroup; fd: number } | null = null;
    let result: ReturnType<NativeLauncherApi['spawn']>;
    const end = deferred<ChildEnd>();
    // Set once the launch returns; the exit callback is asynchronous, so it always finds it (checked anyway).
    let tree: JobTree | undefined;
    let reapedEarly = false;
    // lockd-reaper's report pipe (read end; the write end is the child's fd 3), when the job runs under it.
    let report: number | null = null;
    let reportWrite: number | null = null;
    try {
      let stdin: number;
      if (typeof spec.stdin === 'number') {
        stdin = spec.stdin;
      } else if (spec.stdin === 'pipe') {
        const [r, w] = this.api.pipe();
        opened.push(r);
        parentEnds.stdin = w;
        stdin = r;
      } else {
        stdin = openSync('/dev/null', 'r');
        opened.push(stdin);
      }
      let out: number;
      let err: number;
      if (spec.output === 'pipe') {
        const [r1, w1] = this.api.pipe();
        opened.push(w1);
        parentEnds.stdout = r1;
        const [r2, w2] = this.api.pipe();
        opened.push(w2);
        parentEnds.stderr = r2;
        out = w1;
        err = w2;
      } else if (typeof spec.output === 'number') {
        out = spec.output;
        err = spec.output;
      } else {
        out = spec.output.stdout;
        err = spec.output.stderr;
      }
      birth = JobCgroup.forBirth(spec.runId);
      const candidates = commandCandidates(spec.file, spec.env);
      const argv = [spec.file, ...spec.args];
      // No cgroup to be born in: the job runs under its own subreaper, so its orphans stay in its tree.
      const reaper = birth === null ? reaperPath() : null;
      if (reaper) {
        const [r, w] = this.api.pipe();
        report = r;
        opened.push(w);
        reportWrite = w;
      }
      result = this.api.spawn(
        {
          candidates: reaper ? [reaper] : candidates,
          argv: reaper ? reaperArgv(reaper, spec.graceMs ?? 5000, candidates, argv) : argv,
          envp: Object.entries(spec.env)
            .filter(([k, v]) => k !== '' && !k.includes('=') && !k.includes('\0') && !v.includes('\0'))
            .map(([k, v]) => `${k}=${v}`),
          cwd: [spec.cwd],
          stdio: [stdin, out, err],
          cgroupFd: birth?.fd ?? -1,
          ...(reportWrite !== null ? { reportFd: reportWrite } : {}),
          ...(spec.identity ? { ids: { uid: spec.identity.uid, gid: spec.identity.gid, groups: [...spec.identity.groups] } } : {}),
        },
        (code, signo) => {
          // The addon has reaped the leader by now; the tree must stop treating its pid as ours before anyone awaits the exit.
          if (tree) tree.leaderReaped();
          else reapedEarly = true;
          const execFailure = report === null ? undefined : readReport(report, spec.file);
          report = null;
          end.resolve({ code, signal: signo === null ? null : (SIGNAL_NAMES.get(signo) ?? null), ...(execFailure ? { execFailure } : {}) });
        },
      );
    } catch (e) {
      for (const fd of Object.values(parentEnds)) if (fd !== null) close(fd);
      parentEnds = { stdin: null, stdout: null, stderr: null };
      if (report !== null) close(report);
      report = null;
      if (birth) birth.cgroup.remove();
      const failure = e as NodeJS.ErrnoException & { stage?: string };
      // Only an exec failure's errno says "not found" (127) or "not executable" (126); a chdir as the job's user
      // that is refused, or an id switch that fails, is lockd's failure to start it (spawn_failed).
      const code = failure.stage === undefined || failure.stage === 'exec' ? failure.code : undefined;
      // Reported after this call returns, as the portable launcher's spawn errors are.
      queueMicrotask(() => failed({ ...(code ? { code } : {}), message: failure.message }));
      return null;
    } finally {
      for (const fd of opened) close(fd);
      if (birth) close(birth.fd);
    }
    const { pid, handle } = result;
    const startTime = processStartTimeSync(pid) ?? '';
    const leader = { signal: (sig: NodeJS.Signals): boolean => this.api.signal(handle, osConstants.signals[sig]) };
    if (birth && !result.inCgroup) birth.cgroup.remove();
    const bornIn = birth && result.inCgroup ? birth.cgroup : undefined;
    tree = new JobTree({ pid, startTime, runId: spec.runId, envTag: `LOCKD_RUN_ID=${spec.runId}`, useCgroup: bornIn !== undefined, bornIn, leader });
    if (reapedEarly) tree.leaderReaped();
    return {
      pid,
      startTime,
      stdin: parentEnds.stdin === null ? null : (new Socket({ fd: parentEnds.stdin, readable: false, writable: true }) as Writable),
      stdout: parentEnds.stdout === null ? null : (new Socket({ fd: parentEnds.stdout, readable: true, writable: false }) as Readable),
      stderr: parentEnds.stderr === null ? null : (new Socket({ fd: parentEnds.stderr, readable: true, writable: false }) as Readable),
      exited: end.promise,
      tree,
    };
  }
}

/**
 * What the reaper reported, read once it has exited: it was the last holder of the pipe's write end (fd 3, close-on-
 * exec before it forked the job), so the read cannot block. Closes the pipe.
 */
function readReport(fd: number, file: string): LaunchFailure | undefined {
  try {
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf, 0, buf.length, null);
    return parseReaperReport(buf.toString('latin1', 0, n), file);
  } catch {
    return undefined;
  } finally {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}

/**
 * Where `file` may be, in the order execvp would try: itself when it names a path, else each entry of the job's
 * PATH (an empty entry is the working directory), or the C library's default PATH when the job has none.
 */
export function commandCandidates(file: string, env: Readonly<Record<string, string>>): string[] {
  if (file.includes('/')) return [file];
  const path = env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  return path.split(delimiter).map((dir) => (dir === '' ? file : join(dir, file)));
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
