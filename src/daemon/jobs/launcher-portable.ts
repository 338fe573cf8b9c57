/**
 * The portable launcher: execa (libuv's spawn) in the job's own process group, exact argv, no shell. On Linux the
 * leader is moved into its job cgroup right after it starts (asynchronously: the move can wait for an RCU grace
 * period), so a grandchild forked in its first milliseconds can escape the cgroup; docs/crash-safety.md says so.
 */
import { execa, type ResultPromise } from 'execa';
import { processStartTimeSync } from '../../util/proc.js';
import { JobTree } from './process-tree.js';
import type { ChildEnd, LaunchedJob, LaunchFailure, Launcher, LaunchSpec } from './launcher.js';

export class PortableLauncher implements Launcher {
  readonly name = 'portable' as const;
  // execa can set a uid and gid but not the supplementary groups: system mode wraps the job in setpriv instead.
  readonly setsIds = false;
  readonly detail = process.platform === 'linux' ? 'execa (fork+exec), process group, cgroup joined after start' : 'execa, process group';

  launch(spec: LaunchSpec, failed: (e: LaunchFailure) => void): LaunchedJob | null {
    let child: ResultPromise;
    try {
      child = execa(spec.file, [...spec.args], {
        cwd: spec.cwd,
        env: { ...spec.env },
        extendEnv: false,
        stdin: spec.stdin as 'pipe',
        // (typed as 'pipe': with a direct log or the relay's pipes the streams are null, which the callers allow)
        stdout: (spec.output === 'pipe' || typeof spec.output === 'number' ? spec.output : spec.output.stdout) as 'pipe',
        stderr: (spec.output === 'pipe' || typeof spec.output === 'number' ? spec.output : spec.output.stderr) as 'pipe',
        buffer: false,
        reject: false,
        detached: true, // its own process group: signals and cleanup address the whole job
        cleanup: false, // the daemon's exit must not kill detached runs; shutdown handles jobs explicitly
        windowsHide: true,
        encoding: 'buffer',
      });
    } catch (e) {
      failed(e as NodeJS.ErrnoException);
      return null;
    }
    child.catch(() => undefined); // the outcome is read from the exit event
    if (child.pid === undefined) {
      child.once('error', (e: Error) => failed(e as NodeJS.ErrnoException));
      return null;
    }
    const pid = child.pid;
    const startTime = processStartTimeSync(pid) ?? '';
    const exited = new Promise<ChildEnd>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    return {
      pid,
      startTime,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      exited,
      tree: new JobTree({ pid, startTime, runId: spec.runId, envTag: `LOCKD_RUN_ID=${spec.runId}`, cgroupMove: 'async' }),
    };
  }
}
