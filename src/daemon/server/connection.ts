/**
 * One client connection on the daemon side: frame decoding, the hello handshake, JSON replies and binary
 * output frames with backpressure. A connection that misbehaves (garbage, oversized frames, bad JSON, silence)
 * gets one `error` frame where possible and is closed; it can never throw into the daemon.
 */
import type { Socket } from 'node:net';
import { FrameDecoder, FrameKind, dataHeader, encodeFrame, MAX_DATA_FRAME, type Frame } from '../../protocol/framing.js';
import type { ClientMessage, DaemonMessage } from '../../protocol/messages.js';
import { parseClientMessage } from '../../protocol/validate.js';
import { PROTOCOL_VERSION, LOCKD_VERSION } from '../../protocol/version.js';
import { LockdError, isLockdError } from '../../util/errors.js';

/** How long a connected client may stay silent before its hello; keeps slow-loris clients from piling up. */
export const HELLO_TIMEOUT_MS = Number(process.env.LOCKD_HELLO_TIMEOUT_MS) > 0 ? Number(process.env.LOCKD_HELLO_TIMEOUT_MS) : 10_000;

/** Bytes a client may send before its hello is complete (a hello is a few hundred bytes). */
const PRE_HELLO_MAX_BYTES = 64 * 1024;

export interface ConnectionHandlers {
  /** Called for each validated message after the handshake. */
  onMessage(conn: Connection, msg: ClientMessage): void;
  onStdin(conn: Connection, data: Buffer): void;
  onClose(conn: Connection): void;
  helloInfo(): Omit<Extract<DaemonMessage, { type: 'hello_ok' }>, 'type'>;
}

let nextId = 1;

/** JSON replies at least this long (in UTF-16 units) are written as header + string rather than one buffer. */
const LARGE_JSON_CHARS = 64 * 1024;

export class Connection {
  readonly id = nextId++;
  /** Set after a valid hello. */
  clientPid: number | null = null;
  clientVersion: string | null = null;
  /** Kernel-verified peer credentials when available (system mode); filled by the server. */
  peer: { pid: number; uid: number; gid: number } | null = null;
  closed = false;
  /** Set by fail(): the connection is being closed after an error reply. */
  private failed = false;
  private decoder = new FrameDecoder();
  private helloTimer: NodeJS.Timeout | null;
  private drainWaiters: Array<() => void> = [];
  /** Whatever the handler wants to hang on the connection (the run it started, its event subscription…). */
  attachment: {
    /** The long-lived request (run, events, watch_run, acquire) this connection carries; set once, by the core. */
    owner?: string;
    onClose?: () => void;
    /** The run this connection started, once it exists. */
    job?: { writeStdin(d: Buffer, c: Connection): void; endStdin(): void };
    /** stdin (and its EOF) that arrived before the run existed; handed to it when it does. */
    earlyStdin?: Buffer[];
    earlyStdinEnd?: boolean;
  } = {};

  constructor(
    readonly socket: Socket,
    private readonly handlers: ConnectionHandlers,
  ) {
    socket.setNoDelay?.(true);
    this.helloTimer = setTimeout(() => this.fail('hello_timeout', 'no hello received in time'), HELLO_TIMEOUT_MS);
    this.helloTimer.unref();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    });
    socket.on('error', () => {
      /* reported through 'close' */
    });
    socket.on('close', () => {
      this.closed = true;
      if (this.helloTimer) clearTimeout(this.helloTimer);
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
      this.handlers.onClose(this);
    });
  }

  send(msg: DaemonMessage): boolean {
    if (this.closed || this.socket.destroyed) return false;
    const json = JSON.stringify(msg);
    if (json.length < LARGE_JSON_CHARS) return this.socket.write(encodeFrame(FrameKind.Json, Buffer.from(json, 'utf8')));
    // A large reply (a status snapshot with thousands of waiters is megabytes) goes to the socket as a string behind
    // its header: converted to UTF-8 once, by the write, instead of into a buffer and then copied into the frame.
    this.socket.cork();
    this.socket.write(dataHeader(FrameKind.Json, Buffer.byteLength(json, 'utf8')));
    const ok = this.socket.write(json, 'utf8');
    this.socket.uncork();
    return ok;
  }

  /** Send output bytes; returns false when the socket's buffer is full (the caller pauses its source until `onDrain`). */
  sendData(kind: typeof FrameKind.Stdout | typeof FrameKind.Stderr, data: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return true;
    let ok = true;
    for (let off = 0; off < data.length; off += MAX_DATA_FRAME) {
      const part = data.subarray(off, Math.min(data.length, off + MAX_DATA_FRAME));
      this.socket.write(dataHeader(kind, part.length));
      ok = this.socket.write(part);
    }
    return ok;
  }

  onDrain(fn: () => void): void {
    if (this.closed) fn();
    else this.drainWaiters.push(fn);
  }

  /** Send an error reply (best effort) and close. */
  fail(code: string, message: string): void {
    if (this.closed || this.failed) return;
    // Whatever the client sends after this is not read: the stream may be out of step, and one error is enough.
    this.failed = true;
    this.send({ type: 'error', code, message });
    this.socket.end();
    // A client that never reads must not keep the socket forever.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  end(msg?: DaemonMessage): void {
    if (msg) this.send(msg);
    if (!this.closed) this.socket.end();
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.failed) return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.fail('protocol_error', isLockdError(e) ? e.message : 'malformed frame');
      return;
    }
    for (const frame of frames) {
      if (this.closed || this.failed) return;
      try {
        this.onFrame(frame);
      } catch (e) {
        if (isLockdError(e)) this.fail(e.code, e.message);
        else this.fail('internal_error', `internal error: ${(e as Error).message}`);
        return;
      }
    }
    // Before hello nothing bigger than a hello is legitimate: a client announcing a huge frame must not make us
    // buffer megabytes per connection (thousands of such connections would exhaust memory).
    if (this.clientPid === null && this.decoder.pendingBytes > PRE_HELLO_MAX_BYTES) this.fail('protocol_error', 'too much data before hello');
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === FrameKind.Stdin) {
      if (this.clientPid === null) throw new LockdError('protocol_error', 'data before hello');
      this.handlers.onStdin(this, frame.payload);
      return;
    }
    if (frame.kind !== FrameKind.Json) throw new LockdError('protocol_error', 'clients may only send control and stdin frames');
    const msg = parseClientMessage(frame.payload);
    if (this.clientPid === null) {
      if (msg.type !== 'hello') throw new LockdError('protocol_error', `expected hello, got ${msg.type}`);
      if (msg.protocol !== PROTOCOL_VERSION) {
        throw new LockdError(
          'protocol_mismatch',
          `protocol mismatch: client lockd ${msg.client_version} speaks protocol ${msg.protocol}, daemon lockd ${LOCKD_VERSION} speaks protocol ${PROTOCOL_VERSION}; restart the daemon (lockd shutdown) or use a matching client`,
        );
      }
      if (this.helloTimer) clearTimeout(this.helloTimer);
      this.helloTimer = null;
      this.clientPid = msg.pid;
      this.clientVersion = msg.client_version;
      this.send({ type: 'hello_ok', ...this.handlers.helloInfo() });
      return;
    }
    if (msg.type === 'hello') throw new LockdError('protocol_error', 'duplicate hello');
    this.handlers.onMessage(this, msg);
  }
}
