/**
 * A waiting run's progress: every `progress_ms` (the client's --progress-interval, asked for by a client without a
 * terminal) the daemon sends `progress {position, blockers, eta_ms}`, and the client prints it as a "still waiting"
 * line (client/run-text.ts, the same words from both clients). The daemon sends it because it knows the queue and
 * the estimate: a client would otherwise need its own timer and a status request per line, which the native client
 * (native/client/) does not have. One timer per waiting run that asked, none otherwise.
 */
import type { HolderInfo } from '../../protocol/messages.js';

export interface ProgressSink {
  /** Send one progress message (only while the run is queued and its client attached: the caller checks). */
  send(position: number, blockers: HolderInfo[]): void;
}

export class WaitProgress {
  private position: number;
  private blockers: HolderInfo[];
  private timer: NodeJS.Timeout | null;

  constructor(everyMs: number, position: number, blockers: HolderInfo[], sink: ProgressSink) {
    this.position = position;
    this.blockers = blockers;
    this.timer = setInterval(() => sink.send(this.position, this.blockers), everyMs);
    // A waiting client keeps the daemon busy anyway; this timer alone must not keep it alive.
    this.timer.unref();
  }

  /** The queue moved (a `queued` or `waiting` message went out): the next line says so. */
  saw(position: number, blockers: HolderInfo[]): void {
    this.position = position;
    this.blockers = blockers;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
