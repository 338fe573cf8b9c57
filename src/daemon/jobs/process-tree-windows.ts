/**
 * A job's process tree on Windows, where JobTree's means (process groups, signals, /proc, cgroups, `ps` start times)
 * do not exist. What stands in for them:
 *
 *  - Identity: the leader is the launcher's own child, and libuv holds its process handle until it has reported the
 *    exit; Windows never gives a pid to a new process while a handle to the old one is open. So while `leaderAlive()`
 *    is true, the leader's pid names the leader, without a start time.
 *  - Ending the tree: tree-kill (`taskkill /PID <leader> /T /F`) from that verified leader. Where taskkill refuses
 *    /T (Wine 8's taskkill knows only /F, /IM and /PID), lockd does what /T does itself: it lists (pid, parent pid)
 *    pairs (util/proc-windows.ts), walks down from the leader, and ends each descendant deepest first with
 *    TerminateProcess (Node's process.kill on Windows), then the leader through its handle.
 *  - Signals: Windows has none to forward. Any signal the client forwards (Ctrl+C is SIGINT) ends the tree, which is
 *    what a Windows user expects of Ctrl+C in a console job.
 *
 * Limits, stated in docs/windows.md: a descendant whose parent exited before the kill is no longer linked to the
 * leader by parent pids and is not found (a Job Object with kill-on-close would find it; Node cannot create one);
 * parent pids are not start-time checked (no start-time source exists in Wine, and none without PowerShell on
 * Windows), so a process that predates the job and carries a stale parent pid equal to a pid of the job would be
 * ended too (taskkill /T has the same weakness); after the leader has exited nothing of the job can be found.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { descendantsDeepestFirst, listWindowsProcesses } from '../../util/proc-windows.js';
import { JobTree, type KillOptions, type KillResult, type ProcessSnapshot } from './process-tree.js';
import { treeKillVerified } from './tree-kill-verified.js';

export interface WindowsLeader {
  /** True until the launcher has seen the leader exit (its handle is held until then). */
  alive(): boolean;
  /** TerminateProcess through the held handle; false once it has exited. */
  terminate(): boolean;
}

export interface WindowsJobTreeOptions {
  pid: number;
  runId: string;
  envTag: string;
  leader: WindowsLeader;
}

export class WindowsJobTree extends JobTree {
  private readonly lead: WindowsLeader;
  private ending: Promise<KillResult> | null = null;

  constructor(opts: WindowsJobTreeOptions) {
    super({ pid: opts.pid, startTime: '', runId: opts.runId, envTag: opts.envTag, useCgroup: false });
    this.lead = opts.leader;
  }

  override groupEmptySync(): boolean {
    return !this.lead.alive();
  }

  override async isEmpty(): Promise<boolean> {
    return !this.lead.alive();
  }

  override async members(_snapshot?: ProcessSnapshot): Promise<number[]> {
    return this.lead.alive() ? [this.pid] : [];
  }

  /** The signal a caller asked to send when it ended the tree (none for a plain kill): the run records it. */
  requestedSignal: NodeJS.Signals | null = null;

  override async signal(sig: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    if (!this.lead.alive()) return 0;
    if (this.requestedSignal === null && sig !== 'SIGKILL') this.requestedSignal = sig;
    await this.end(5000);
    return 1;
  }

  override kill(opts: KillOptions): Promise<KillResult> {
    return this.end(Math.max(0, opts.graceMs) + (opts.killWaitMs ?? 5000));
  }

  override dispose(): boolean {
    return true;
  }

  override async cgroupSettled(): Promise<void> {}

  override get cgroupPath(): string | null {
    return null;
  }

  /** End the tree (concurrent calls share one), then wait up to `waitMs` for the leader's exit to be seen. */
  private end(waitMs: number): Promise<KillResult> {
    if (this.ending === null) {
      this.ending = this.runEnd(waitMs).finally(() => {
        this.ending = null;
      });
    }
    return this.ending;
  }

  private async runEnd(waitMs: number): Promise<KillResult> {
    if (!this.lead.alive()) return { escalated: false, remaining: 0 };
    const treeKilled = await treeKillVerified(this.pid, () => this.lead.alive(), 'SIGKILL');
    if (!treeKilled && this.lead.alive()) {
      // taskkill /T refused (Wine) or failed: the same walk by parent pids, listed while the leader still lives.
      const table = await listWindowsProcesses();
      if (table !== null && this.lead.alive()) {
        for (const pid of descendantsDeepestFirst(this.pid, table)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
      }
      this.lead.terminate();
    }
    const deadline = Date.now() + waitMs;
    for (let delay = 5; this.lead.alive() && Date.now() < deadline; delay = Math.min(delay * 2, 100)) await sleep(delay);
    return { escalated: true, remaining: this.lead.alive() ? 1 : 0 };
  }
}
