/** Bad input on the socket: an error reply where possible, a closed connection, and a daemon that keeps serving. */
import test from 'ava';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { startDaemon, lockd, lockdSpawn, waitForFile, type Daemon } from './helpers/lockd.js';
import { encodeJson, encodeFrame, FrameDecoder, FrameKind } from '../src/protocol/framing.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';

interface Exchange {
  replies: Array<{ type: string; code?: string; message?: string }>;
  closed: boolean;
}

/** Connect, send bytes, collect JSON replies until the daemon closes the connection (bounded). */
function exchange(d: Daemon, chunks: Buffer[], opts: { endAfter?: boolean; timeoutMs?: number } = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const s: Socket = createConnection(d.socket);
    const dec = new FrameDecoder();
    const replies: Exchange['replies'] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`daemon did not close the connection; replies: ${JSON.stringify(replies)}`));
    }, opts.timeoutMs ?? 15_000);
    s.on('connect', () => {
      for (const c of chunks) s.write(c);
      if (opts.endAfter) s.end();
    });
    s.on('data', (b: Buffer) => {
      for (const f of dec.push(b)) if (f.kind === FrameKind.Json) replies.push(JSON.parse(f.payload.toString()));
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ replies, closed: true });
    });
  });
}

const hello = () => encodeJson({ type: 'hello', protocol: PROTOCOL_VERSION, client_version: 'test', pid: process.pid });

async function withHeldLock(t: Parameters<typeof startDaemon>[0], d: Daemon) {
  const ready = join(d.dir, 'held.ready');
  const go = join(d.dir, 'held.go');
  const c = lockdSpawn(t, d, ['run', '-q', '--lock', 'precious', '--', 'sh', '-c', `touch ${ready}; while [ ! -e ${go} ]; do sleep 0.02; done`]);
  await waitForFile(ready);
  return { c, go };
}

async function stillServing(t: Parameters<typeof startDaemon>[0] & { is: (a: unknown, b: unknown) => void }, d: Daemon) {
  const ping = await lockd(d, ['ping']);
  t.is(ping.code, 0);
  const busy = await lockd(d, ['run', '--wait', '0', '--lock', 'precious', '--', 'true']);
  t.is(busy.code, 75);
}

test('garbage, oversized, unknown and ill-typed frames get an error and a close; the daemon and its locks are untouched', async (t) => {
  const d = await startDaemon(t);
  await withHeldLock(t, d);
  const cases: Array<[string, Buffer[], RegExp]> = [
    ['garbage bytes', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], /protocol_error|bad_request/],
    ['oversized length', [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00])], /protocol_error/],
    ['unknown frame kind', [Buffer.from([0, 0, 0, 1, 9, 0])], /protocol_error/],
    ['not JSON', [encodeFrame(FrameKind.Json, Buffer.from('{nope'))], /bad_request/],
    ['request before hello', [encodeJson({ type: 'ping' })], /protocol_error/],
    ['unknown message type', [hello(), encodeJson({ type: 'format_disk' })], /bad_request/],
    ['wrong field types', [hello(), encodeJson({ type: 'run', req: { argv: 'rm -rf /', locks: 7 } })], /bad_request/],
    ['stdout frame from a client', [hello(), encodeFrame(FrameKind.Stdout, Buffer.from('x'))], /protocol_error/],
    ['duplicate hello', [hello(), hello()], /protocol_error/],
  ];
  for (const [name, chunks, code] of cases) {
    const r = await exchange(d, chunks);
    t.true(r.closed, name);
    const err = r.replies.find((x) => x.type === 'error');
    t.truthy(err, name);
    t.regex(String(err?.code), code, name);
  }
  await stillServing(t, d);
});

test('a protocol version mismatch names both versions', async (t) => {
  const d = await startDaemon(t);
  const r = await exchange(d, [encodeJson({ type: 'hello', protocol: 999, client_version: '9.9.9', pid: 1 })]);
  const err = r.replies.find((x) => x.type === 'error')!;
  t.is(err.code, 'protocol_mismatch');
  t.regex(err.message!, /9\.9\.9.*999.*protocol 1/);
});

test('a truncated frame followed by a close, and a silent client, leave the daemon serving', async (t) => {
  const d = await startDaemon(t, { env: { LOCKD_HELLO_TIMEOUT_MS: '300' } });
  await withHeldLock(t, d);
  const full = encodeJson({ type: 'hello', protocol: PROTOCOL_VERSION, client_version: 'x', pid: 1 });
  const truncated = await exchange(d, [full.subarray(0, full.length - 3)], { endAfter: true });
  t.true(truncated.closed);
  const silent = await exchange(d, []);
  t.true(silent.closed);
  t.is(silent.replies[0]?.code, 'hello_timeout');
  await stillServing(t, d);
});
