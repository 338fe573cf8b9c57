/**
 * A run whose caller passed its own descriptors (docs/protocol.md, "Descriptor passing"): the job writes into two
 * pipes, and the addon's relay threads (native/relay.c) tee each pipe into output.log and splice it to the caller's
 * descriptor, in the kernel. No byte of output crosses JavaScript on its way to the caller; the verdict scan reads the
 * log copy as it grows (log-follower.ts). Backpressure is the kernel's: a caller that stops reading blocks the job.
 */
import { closeSync } from 'node:fs';
import type { ManifestStdio } from '../../runs/manifest.js';
import type { RelayApi, RelayStreamResult } from '../../util/fdpass.js';

/** The caller's descriptors, received over the socket (close-on-exec, owned by the daemon until handed on). */
export interface PassedStdio {
  stdout: number;
  stderr: number;
  /** With -i: the caller's stdin, given to the job as its fd 0 (binary, EOF included); else null (/dev/null). */
  stdin: number | null;
}

/** How a run's output reaches its caller, decided when the request arrived (server/stdio-exchange.ts). */
export interface JobStdio {
  /** The caller's descriptors when it passed them and the daemon took them; null: the framed stream. */
  passed: PassedStdio | null;
  stdio: ManifestStdio;
}

export function closePassed(p: PassedStdio): void {
  for (const fd of [p.stdout, p.stderr, p.stdin]) {
    if (fd === null) continue;
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}

export interface RelayOutcome {
  streams: RelayStreamResult[];
  logError: string | null;
}

export class OutputRelay {
  /** Resolves once both streams ended (EOF of the job's pipes, the caller gone, or cancel()). */
  readonly done: Promise<RelayOutcome>;
  private finished = false;
  private handle: object;

  /**
   * Takes ownership of every descriptor given (the job's pipe read ends, the caller's descriptors, the log fd),
   * also when it throws.
   */
  constructor(
    private readonly api: RelayApi,
    logFd: number,
    pipes: { stdout: number; stderr: number },
    dest: { stdout: number; stderr: number },
  ) {
    let resolve!: (o: RelayOutcome) => void;
    this.done = new Promise<RelayOutcome>((r) => {
      resolve = r;
    });
    try {
      this.handle = api.relayStart(
        {
          logFd,
          streams: [
            { src: pipes.stdout, dest: dest.stdout },
            { src: pipes.stderr, dest: dest.stderr },
          ],
        },
        (streams, logError) => {
          this.finished = true;
          resolve({ streams, logError });
        },
      );
    } catch (e) {
      for (const fd of [logFd, pipes.stdout, pipes.stderr, dest.stdout, dest.stderr]) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
      }
      throw e;
    }
  }

  get ended(): boolean {
    return this.finished;
  }

  /** Bytes the job wrote that the relay has not taken yet (a slow caller: > 0; an escaped process holding the pipe: 0). */
  pending(): number {
    return this.finished ? 0 : this.api.relayPending(this.handle);
  }

  /** Give up on the caller: the rest goes to the log only, then `done` resolves. */
  cancel(): void {
    if (!this.finished) this.api.relayCancel(this.handle);
  }
}
