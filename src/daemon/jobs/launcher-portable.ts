/**
 * The portable launcher: execa (libuv's spawn) in the job's own process group, exact argv, no shell. On Linux the
 * leader is moved into its job cgroup right after it starts (asynchronously: the move can wait for an RCU grace
 * period), so a grandchild forked in its first milliseconds can escape the cgroup; docs/crash-safety.md says so.
 */
import { execa, type ResultPromise } from 'execa';
import { processStartTimeSync } from '../../util/proc.js';
import { JobTree } from './process-tree.js';
import { WindowsJobTree } from './process-tree-windows.js';
import { windowsCommand } from './windows-command.js';
import type { ChildEnd, LaunchedJob, LaunchFailure, Launcher, LaunchSpec } from './launcher.js';

export class PortableLauncher implements Launcher {
  readonly name = 'portable' as const;
  // execa can set a uid and gid but not the supplementary groups: system mode wraps the job in setpriv instead.
  readonly setsIds = false;
  readonly detail =
    process.platform === 'linux'
      ? 'execa (fork+exec), process group, cgroup joined after start'
      : process.platform === 'win32'
        ? 'execa, tree ended with taskkill /T (or a parent-pid walk) from the handle-held leader'
        : 'execa, process group';

  launch(spec: LaunchSpec, failed: (e: LaunchFailure) => void): LaunchedJob | null {
    let child: ResultPromise;
    let file = spec.file;
    let args = [...spec.args];
    let verbatim = false;
    if (process.platform === 'win32') {
      // lockd resolves the command and builds a script's cmd.exe line itself (windows-command.ts says why).
      const win = windowsCommand(spec.file, spec.args, spec.cwd, spec.env);
      if (win === null) {
        const e = new Error(`spawn ${spec.file} ENOENT`) as NodeJS.ErrnoException;
        e.code = 'ENOENT';
        failed(e);
        return null;
      }
      ({ file, args, verbatim } = win);
    }
    try {
      child = execa(file, args, {
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
        windowsVerbatimArguments: verbatim,
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
    if (process.platform === 'win32') {
      // No process groups, signals or start times: the tree is judged by the leader's held handle (process-tree-windows.ts).
      let alive = true;
      const leader = { alive: () => alive, terminate: () => alive && child.kill('SIGKILL') };
      const tree = new WindowsJobTree({ pid, runId: spec.runId, envTag: `LOCKD_RUN_ID=${spec.runId}`, leader });
      const exited = new Promise<ChildEnd>((resolve) =>
        child.once('exit', (code, signal) => {
          alive = false;
          // Ended by lockd: libuv reports SIGKILL (TerminateProcess); the signal asked for (SIGINT for Ctrl+C) is
          // what the run records, so Ctrl+C exits 130 as on Linux, not 137.
          resolve({ code, signal: signal !== null ? (tree.requestedSignal ?? signal) : null });
        }),
      );
      return {
        pid,
        startTime: '',
        stdin: child.stdin,
        stdout: child.stdout,
        stderr: child.stderr,
        exited,
        tree,
      };
    }
    const startTime = processStartTimeSync(pid) ?? '';
    const tree = new JobTree({ pid, startTime, runId: spec.runId, envTag: `LOCKD_RUN_ID=${spec.runId}`, cgroupMove: 'async' });
    // libuv has reaped the leader when 'exit' is emitted (see JobTree.leaderReaped).
    const exited = new Promise<ChildEnd>((resolve) =>
      child.once('exit', (code, signal) => {
        tree.leaderReaped();
        resolve({ code, signal });
      }),
    );
    return {
      pid,
      startTime,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      exited,
      tree,
    };
  }
}
