/**
 * The addon's descriptor passing (native/fdpass.c: SCM_RIGHTS over a Unix socket) and, on Linux, its kernel-side
 * output relay (native/relay.c: tee/splice). Both are optional like the rest of the addon: null here means "not on
 * this host", and the caller keeps the framed stream (docs/protocol.md, "Descriptor passing").
 */
import type { Socket } from 'node:net';
import { loadNative } from './peercred.js';

export interface FdPassApi {
  /** One sendmsg carrying `fds` on `payload`; the bytes sent, or null when the socket is full (try again). */
  sendFds(socketFd: number, fds: number[], payload: Buffer): number | null;
  /** Never blocks: null when nothing is there yet, else the descriptors (close-on-exec) and the payload bytes. */
  recvFds(socketFd: number, maxFds: number, maxLen: number): { fds: number[]; data: Buffer } | null;
}

export interface RelayStreamResult {
  /** Bytes that reached the caller's descriptor. */
  delivered: number;
  /** Bytes written to the run's log (every byte the job wrote, unless the log failed). */
  logged: number;
  /** 'splice' (zero-copy) or 'copy' (read+write in the relay thread: a terminal, an O_APPEND file). */
  mode: 'splice' | 'copy';
  /** The caller's end went away (EPIPE): the job's pipe was closed so its next write fails, as under flock(1). */
  destGone: boolean;
  error: string | null;
}

export interface RelayApi {
  /** Owns src, dest and logFd from here on (closes them); onDone runs once, on the event loop, when all streams end. */
  relayStart(opts: { logFd: number; streams: Array<{ src: number; dest: number }> }, onDone: (results: RelayStreamResult[], logError: string | null) => void): object;
  /** Stop waiting for the caller: what is left in the job's pipes goes to the log only. Idempotent. */
  relayCancel(handle: object): void;
  /** Bytes waiting in the job's pipes (not yet teed), summed over the streams. */
  relayPending(handle: object): number;
}

export function fdPassApi(): FdPassApi | null {
  if (process.platform === 'win32') return null;
  const n = loadNative() as (ReturnType<typeof loadNative> & Partial<FdPassApi>) | null;
  return n && typeof n.sendFds === 'function' && typeof n.recvFds === 'function' ? (n as unknown as FdPassApi) : null;
}

export function relayApi(): RelayApi | null {
  if (process.platform !== 'linux') return null;
  const n = loadNative() as (ReturnType<typeof loadNative> & Partial<RelayApi>) | null;
  return n && typeof n.relayStart === 'function' && typeof n.relayCancel === 'function' && typeof n.relayPending === 'function' ? (n as unknown as RelayApi) : null;
}

/** native/pty.c: a pty for a job whose caller is on a terminal, and the thread that copies it into the relay. */
export interface PtyApi {
  /** [master, slave, control], close-on-exec, with the window size of `callerFd` and output post-processing off;
   * control is a second descriptor of the master, for ptyResize, so resizing never races the pump closing it. */
  ptyOpen(callerFd: number): [number, number, number];
  ptyResize(control: number, cols: number, rows: number): void;
  /** Copies master into pipeW on a thread until the last slave is closed; owns and closes both from here on. */
  ptyPump(master: number, pipeW: number): void;
}

export function ptyApi(): PtyApi | null {
  if (process.platform !== 'linux') return null;
  const n = loadNative() as (ReturnType<typeof loadNative> & Partial<PtyApi>) | null;
  return n && typeof n.ptyOpen === 'function' && typeof n.ptyPump === 'function' && typeof n.ptyResize === 'function' ? (n as unknown as PtyApi) : null;
}

/** The fd of a connected `net.Socket` on a Unix socket (Node exposes it only on the private `_handle`), or null. */
export function socketFd(socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

interface StreamHandle {
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

/**
 * Stop libuv reading this socket *now*, so the next message, with descriptors attached, stays in the kernel for
 * recvFds (read(2) would drop the descriptors). Not socket.pause(): a paused net.Socket still reads up to its
 * high-water mark, and clearing the handle's `reading` flag would only make Node's stream start it again on its next
 * read(0). So the flag stays set (Node believes it reads) and the returned function restarts the real reading.
 * Null when the socket has no such handle.
 */
export function stopReading(socket: Socket): (() => void) | null {
  const h = (socket as unknown as { _handle?: StreamHandle })._handle;
  if (!h || typeof h.readStop !== 'function' || typeof h.readStart !== 'function') return null;
  const wasReading = h.reading === true;
  if (wasReading) h.readStop();
  return () => {
    if (wasReading && !socket.destroyed) h.readStart!();
  };
}
