/**
 * The client side of the socket: connect (auto-starting a daemon when none answers), say hello, exchange
 * frames. Import-light on purpose: node built-ins only, because every Make recipe pays for this start-up.
 */
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { FrameDecoder, FrameKind, MAX_DATA_FRAME, MAX_JSON_FRAME, encodeFrame, encodeJson, type Frame } from '../protocol/framing.js';
import type { ClientMessage, DaemonMessage, DaemonInfo } from '../protocol/messages.js';
import { PROTOCOL_VERSION, LOCKD_VERSION } from '../protocol/version.js';
import { LockdError, errnoCode, isLockdError } from '../util/errors.js';
import { checkSocketPathLength } from '../util/paths.js';
import { RUN_TEXT } from './run-text.js';

import type { ConnectOptions } from './connect-options.js';

export type { ConnectOptions } from './connect-options.js';

export interface DaemonConnection {
  socket: Socket;
  info: DaemonInfo;
  send(msg: ClientMessage): void;
  sendStdin(data: Buffer): boolean;
  /** Replace the frame handler (the first frames after hello go to it). */
  onMessage: (msg: DaemonMessage) => void;
  onData: (kind: number, data: Buffer) => void;
  onClose: (hadReply: boolean) => void;
  close(): void;
}

function tryConnect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

const NOT_RUNNING = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTSOCK']);

async function connectOrStart(opts: ConnectOptions): Promise<Socket> {
  checkSocketPathLength(opts.socketPath);
  try {
    return await tryConnect(opts.socketPath);
  } catch (e) {
    const code = errnoCode(e);
    if (!code || !NOT_RUNNING.has(code)) throw new LockdError('daemon_unreachable', `cannot connect to the lockd daemon at ${opts.socketPath}: ${(e as Error).message}`);
    if (!opts.autostart) {
      throw new LockdError('daemon_not_running', `no lockd daemon is running on ${opts.socketPath} (${opts.autostartOffReason ?? 'auto-start is off: LOCKD_NO_AUTOSTART is set'})`);
    }
  }
  const { startDaemonProcess } = await import('./autostart.js');
  await startDaemonProcess(opts);
  // The daemon we started is ready, or lost the race to another one that is; either way the socket answers now.
  let lastErr: unknown;
  for (let i = 0; i < 20; i++) {
    try {
      return await tryConnect(opts.socketPath);
    } catch (e) {
      lastErr = e;
      await new Promise((r) => setTimeout(r, 25 * (i + 1)));
    }
  }
  throw new LockdError('daemon_unreachable', `started a lockd daemon but cannot connect to ${opts.socketPath}: ${(lastErr as Error).message}; see ${join(opts.stateDir, 'daemon.log')}`);
}

/**
 * Connect and pipeline the hello with the first request: one round trip, not two. The promise resolves after the
 * daemon's hello_ok; frames that follow go to the handlers the caller sets on the returned connection.
 */
export async function connectDaemon(opts: ConnectOptions, first: ClientMessage | null, rawJson?: RawJsonHook): Promise<DaemonConnection> {
  // A daemon being killed can still complete a connect: its listening socket goes a moment after its other
  // sockets (a queued client retrying at once hits exactly that). Such a connection is closed before a single byte
  // comes back, so the daemon never read the request: connecting again (auto-starting if needed) is safe.
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectDaemonOnce(opts, first, rawJson);
    } catch (e) {
      if (attempt >= 3 || !isLockdError(e, 'daemon_lost') || e.details?.silent !== true) throw e;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/**
 * Sees each JSON frame after the handshake before it is parsed; returning true consumes it (it is then never parsed
 * nor given to onMessage). For replies that are only passed on (see requestJsonField).
 */
export type RawJsonHook = (payload: Buffer) => boolean;

async function connectDaemonOnce(opts: ConnectOptions, first: ClientMessage | null, rawJson?: RawJsonHook): Promise<DaemonConnection> {
  const socket = await connectOrStart(opts);
  socket.setNoDelay(true);
  // Output bytes go on as they arrive (see FrameDecoderOptions.streamData): no copy to reassemble each data frame.
  const decoder = new FrameDecoder(MAX_JSON_FRAME, MAX_DATA_FRAME, { streamData: true });
  let hadReply = false;
  let gotBytes = false;
  let info: DaemonInfo | null = null;
  const needs = featuresNeeded(first);
  return await new Promise<DaemonConnection>((resolve, reject) => {
    // Frames that arrive before the caller installs its handlers (a reply in the same chunk as hello_ok) are kept
    // and delivered when it does.
    const early: Array<() => void> = [];
    let msgHandler: ((m: DaemonMessage) => void) | null = null;
    let dataHandler: ((kind: number, d: Buffer) => void) | null = null;
    let closeHandler: ((hadReply: boolean) => void) | null = null;
    let closedEarly = false;
    const conn: DaemonConnection = {
      socket,
      get info() {
        return info!;
      },
      send(msg) {
        socket.write(encodeJson(msg));
      },
      sendStdin(data) {
        return socket.write(encodeFrame(FrameKind.Stdin, data));
      },
      get onMessage() {
        return msgHandler ?? (() => undefined);
      },
      set onMessage(fn) {
        msgHandler = fn;
        flush();
      },
      get onData() {
        return dataHandler ?? (() => undefined);
      },
      set onData(fn) {
        dataHandler = fn;
      },
      get onClose() {
        return closeHandler ?? (() => undefined);
      },
      set onClose(fn) {
        closeHandler = fn;
        if (closedEarly && msgHandler) fn(hadReply);
      },
      close() {
        socket.end();
      },
    };
    const flush = () => {
      while (early.length && msgHandler) early.shift()!();
      if (closedEarly && closeHandler) closeHandler(hadReply);
    };
    const handle = (f: Frame) => {
      if (f.kind !== FrameKind.Json) {
        if (dataHandler && !early.length) dataHandler(f.kind, f.payload);
        else early.push(() => conn.onData(f.kind, f.payload));
        return;
      }
      if (info && rawJson?.(f.payload)) {
        hadReply = true;
        return;
      }
      let msg: DaemonMessage;
      try {
        msg = JSON.parse(f.payload.toString('utf8')) as DaemonMessage;
      } catch {
        socket.destroy();
        return;
      }
      if (!info) {
        if (msg.type === 'hello_ok') {
          const missing = needs.filter((f) => !(msg.features ?? []).includes(f));
          if (missing.length > 0) {
            reject(
              new LockdError(
                'daemon_too_old',
                `the running lockd daemon (${msg.version}, pid ${msg.pid}) does not support ${missing.join(', ')}; restart it with this version of lockd (lockd shutdown)`,
              ),
            );
            socket.destroy();
            return;
          }
          info = msg;
          if (needs.length > 0) socket.write(encodeJson(first!));
          resolve(conn);
          return;
        }
        if (msg.type === 'error') {
          reject(new LockdError(msg.code, msg.message));
          socket.destroy();
          return;
        }
      }
      hadReply = true;
      if (msgHandler && !early.length) msgHandler(msg);
      else early.push(() => conn.onMessage(msg));
    };
    socket.on('data', (chunk: Buffer) => {
      gotBytes = true;
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of frames) handle(f);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!info) reject(new LockdError('daemon_lost', RUN_TEXT.lost_handshake, { silent: !gotBytes }));
      else if (closeHandler && msgHandler && !early.length) closeHandler(hadReply);
      else closedEarly = true;
    });
    const hello: ClientMessage = { type: 'hello', protocol: PROTOCOL_VERSION, client_version: LOCKD_VERSION, pid: process.pid };
    // A request the daemon must not half-understand (an older daemon ignores unknown fields) waits for hello_ok's
    // features instead of being pipelined: one round trip more, only for such requests.
    socket.write(first && needs.length === 0 ? Buffer.concat([encodeJson(hello), encodeJson(first)]) : encodeJson(hello));
  });
}

/** Send one request and collect the single reply (for status, ping, acquire and friends). */
export async function request<T extends DaemonMessage['type']>(opts: ConnectOptions, msg: ClientMessage, until: T[]): Promise<Extract<DaemonMessage, { type: T }>> {
  const conn = await connectDaemon(opts, msg);
  return await new Promise((resolve, reject) => {
    conn.onMessage = (m) => {
      if (m.type === 'error') {
        reject(new LockdError(m.code, m.message));
        conn.close();
      } else if ((until as string[]).includes(m.type)) {
        resolve(m as Extract<DaemonMessage, { type: T }>);
        conn.close();
      }
    };
    conn.onClose = () => reject(new LockdError('daemon_lost', 'the lockd daemon closed the connection before answering'));
  });
}

/**
 * Send one request whose reply is only passed on as JSON (`lockd status --json`): resolves with the UTF-8 text of the
 * reply's `field`. When the reply frame is laid out as the daemon writes it, `{"type":"<type>","<field>":{…}}`, those
 * bytes are cut straight out of the frame: a status snapshot of 10,000 waiters is megabytes, and parsing it only to
 * serialize it again was most of the command's own time. Any other layout is parsed and serialized as before.
 */
export async function requestJsonField(opts: ConnectOptions, msg: ClientMessage, type: DaemonMessage['type'], field: string): Promise<Buffer> {
  const prefix = Buffer.from(`{"type":${JSON.stringify(type)},${JSON.stringify(field)}:{`, 'utf8');
  let cut: Buffer | null = null;
  let onCut: ((b: Buffer) => void) | null = null;
  const hook: RawJsonHook = (p) => {
    // The field's value is an object and the last member: the frame ends with its `}` and then the message's `}`.
    if (cut || p.length < prefix.length + 2 || p[p.length - 1] !== 0x7d || p[p.length - 2] !== 0x7d) return false;
    if (!p.subarray(0, prefix.length).equals(prefix)) return false;
    cut = p.subarray(prefix.length - 1, p.length - 1);
    onCut?.(cut);
    return true;
  };
  const conn = await connectDaemon(opts, msg, hook);
  return await new Promise((resolve, reject) => {
    const done = (b: Buffer) => {
      resolve(b);
      conn.close();
    };
    if (cut) done(cut);
    else onCut = done;
    conn.onMessage = (m) => {
      if (m.type === 'error') {
        reject(new LockdError(m.code, m.message));
        conn.close();
      } else if (m.type === type) {
        done(Buffer.from(JSON.stringify((m as unknown as Record<string, unknown>)[field]), 'utf8'));
      }
    };
    conn.onClose = () => reject(new LockdError('daemon_lost', 'the lockd daemon closed the connection before answering'));
  });
}

/** Features (hello_ok `features`) a daemon must have for this request to mean what it says. */
export function featuresNeeded(msg: ClientMessage | null): string[] {
  if (!msg) return [];
  if (msg.type === 'pool') return ['pools'];
  if (msg.type === 'run' || msg.type === 'acquire') {
    const r = msg.req as { pools?: unknown[]; priority?: number; supersede?: string };
    const needs: string[] = [];
    if ((r.pools?.length ?? 0) > 0 || (r.priority ?? 0) !== 0) needs.push('pools');
    if (r.supersede !== undefined) needs.push('supersede');
    return needs;
  }
  return [];
}
