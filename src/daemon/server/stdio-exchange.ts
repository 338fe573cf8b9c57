/**
 * The descriptor exchange of a run (docs/protocol.md, "Descriptor passing"): a client that offers its descriptors
 * (`stdio: 'fds'`) is told `stdio {mode: 'fds'}` or `stdio {mode: 'framed', reason}`. On 'fds' the daemon first
 * stops libuv reading the socket (read(2) would silently drop descriptors), then waits, bounded, for the one message
 * that carries them (payload: one 0 byte), takes it with recvmsg, and reads the socket again. The client sends
 * nothing between its run request and that message, so the stream of frames stays in step.
 */
import type { Connection } from './connection.js';
import type { RunRequest } from '../../protocol/messages.js';
import { LockdError } from '../../util/errors.js';
import { fdPassApi, relayApi, socketFd, stopReading, type FdPassApi } from '../../util/fdpass.js';
import { closePassed, type JobStdio, type PassedStdio } from '../jobs/output-relay.js';

/** How long the client has to send its descriptors once told to. */
const PASS_TIMEOUT_MS = 5000;

export type StdioChoice = JobStdio;

/** Why this daemon will not take a run's descriptors, or null when it will. */
export function declineReason(req: RunRequest, env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.LOCKD_STDIO === 'framed') return 'LOCKD_STDIO=framed in the daemon';
  if (req.detach) return '--detach: the job writes straight to its log';
  if (req.log_max_bytes !== null) return '--log-max-bytes: head and tail are kept by the daemon, which reads the stream';
  if (process.platform !== 'linux') return `the kernel relay (tee/splice) is Linux-only (this is ${process.platform})`;
  if (!fdPassApi() || !relayApi()) return 'the native addon (with descriptor passing and the relay) is not loaded';
  return null;
}

export async function negotiateStdio(conn: Connection, req: RunRequest): Promise<StdioChoice> {
  if (req.stdio !== 'fds') {
    return { passed: null, stdio: { path: 'framed', reason: req.stdio === 'framed' ? 'chosen by the client' : 'the client did not offer its descriptors' } };
  }
  const fd = socketFd(conn.socket);
  const reason = declineReason(req) ?? (fd === null ? 'the connection has no descriptor' : null);
  if (reason !== null || fd === null) {
    conn.send({ type: 'stdio', mode: 'framed', reason });
    return { passed: null, stdio: { path: 'framed', reason } };
  }
  // Synchronously, before any await: nothing may read the socket until the descriptors are in.
  const readAgain = stopReading(conn.socket);
  if (readAgain === null) {
    const why = 'the connection cannot stop its reads';
    conn.send({ type: 'stdio', mode: 'framed', reason: why });
    return { passed: null, stdio: { path: 'framed', reason: why } };
  }
  conn.send({ type: 'stdio', mode: 'fds', reason: null });
  try {
    const passed = await receive(fdPassApi()!, fd, req.interactive ? 3 : 2);
    return { passed, stdio: { path: 'fds', reason: null } };
  } finally {
    readAgain();
  }
}

async function receive(api: FdPassApi, fd: number, want: number): Promise<PassedStdio> {
  const deadline = Date.now() + PASS_TIMEOUT_MS;
  for (let i = 0; ; i++) {
    let got: { fds: number[]; data: Buffer } | null;
    try {
      got = api.recvFds(fd, 3, 1);
    } catch (e) {
      throw new LockdError('protocol_error', `cannot receive the client's descriptors: ${(e as Error).message}`);
    }
    if (got !== null) {
      const [stdout, stderr, stdin] = got.fds;
      if (got.data.length === 1 && got.data[0] === 0 && got.fds.length === want && stdout !== undefined && stderr !== undefined) {
        return { stdout, stderr, stdin: stdin ?? null };
      }
      closePassed({ stdout: got.fds[0] ?? -1, stderr: got.fds[1] ?? -1, stdin: got.fds[2] ?? null });
      if (got.data.length === 0) throw new LockdError('protocol_error', 'the client went away before passing its descriptors');
      throw new LockdError('protocol_error', `expected ${want} descriptors on one 0 byte after stdio {mode: "fds"}, got ${got.fds.length} on ${got.data.length} byte(s)`);
    }
    if (Date.now() > deadline) throw new LockdError('protocol_error', `the client did not pass its descriptors within ${PASS_TIMEOUT_MS / 1000} s`);
    // The client answers within a round trip: look again on the next turn of the loop, then at 1 ms steps.
    await new Promise<void>((r) => (i < 50 ? setImmediate(r) : setTimeout(r, 1)));
  }
}
