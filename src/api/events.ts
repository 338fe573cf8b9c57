/** The live event stream of the Node API (`client.events()`) and of `lockd events`. */
import { connectDaemon, type ConnectOptions, type DaemonConnection } from '../client/connection.js';
import type { DaemonInfo, LockdEvent } from '../protocol/messages.js';
import { LockdError } from '../util/errors.js';

/**
 * `for await (const e of client.events())`. `ready` resolves once the daemon has registered the subscription (so
 * events caused after it are never missed) and `info` then says which daemon answered. Breaking out of the loop,
 * or close(), ends it. A daemon that goes away ends the iteration with a `daemon_lost` LockdError.
 */
export class EventStream implements AsyncIterableIterator<LockdEvent> {
  readonly ready: Promise<void>;
  private queue: LockdEvent[] = [];
  private wake: (() => void) | null = null;
  private done = false;
  private failure: LockdError | null = null;
  private conn: DaemonConnection | null = null;

  constructor(opts: ConnectOptions) {
    this.ready = connectDaemon(opts, { type: 'events' }).then(
      (conn) =>
        new Promise<void>((res, rej) => {
          this.conn = conn;
          // close() before the connection was made: end it now, or it would stay open (and keep the process up).
          if (this.done) conn.socket.destroy();
          conn.onMessage = (m) => {
            if (m.type === 'event') this.queue.push(m.event);
            else if (m.type === 'ok') res();
            else if (m.type === 'error') {
              this.failure = new LockdError(m.code, m.message);
              rej(this.failure);
            }
            this.wake?.();
          };
          conn.onClose = () => {
            if (!this.done) this.failure ??= new LockdError('daemon_lost', 'the lockd daemon closed the event stream');
            this.done = true;
            rej(this.failure ?? new LockdError('daemon_lost', 'the lockd daemon closed the event stream'));
            this.wake?.();
          };
        }),
    );
    this.ready.catch(() => undefined);
  }

  /** The daemon that answered (after `ready`). */
  get info(): DaemonInfo | null {
    return this.conn?.info ?? null;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<LockdEvent> {
    return this;
  }

  async next(): Promise<IteratorResult<LockdEvent>> {
    await this.ready.catch((e: unknown) => {
      // Closed by our own close() before the daemon confirmed: just the end. Anything else is the error.
      if (!this.done || this.failure) throw e;
    });
    for (;;) {
      if (this.queue.length) return { value: this.queue.shift()!, done: false };
      if (this.failure) throw this.failure;
      if (this.done) return { value: undefined, done: true };
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }

  async return(): Promise<IteratorResult<LockdEvent>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** Stop following: the iteration ends now, without the events still buffered. */
  close(): void {
    this.done = true;
    this.queue.length = 0;
    this.conn?.socket.destroy();
    this.wake?.();
  }
}
