/**
 * requestJsonField (what `lockd status --json` uses): the reply's field is passed on as the daemon wrote it, cut out
 * of the frame without parsing, and the result is exactly what parsing and serializing again would give; a reply in
 * another layout is parsed and serialized as before; an error reply is an error. Against a fake daemon on a socket.
 */
import test from 'ava';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestJsonField } from '../src/client/connection.js';
import { FrameDecoder, FrameKind, encodeFrame, encodeJson } from '../src/protocol/framing.js';
import { isLockdError } from '../src/util/errors.js';

/** A fake daemon: answers hello with hello_ok, and the first request with `reply` (raw JSON text), then closes. */
async function fakeDaemon(t: { teardown(fn: () => void): void }, reply: string, opts: { sameWrite?: boolean } = {}): Promise<{ socketPath: string; stateDir: string; autostart: false }> {
  const dir = mkdtempSync(join(tmpdir().length < 40 ? tmpdir() : '/tmp', 'lockd-jf-'));
  const socketPath = join(dir, 's.sock');
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    const dec = new FrameDecoder();
    let n = 0;
    s.on('data', (b: Buffer) => {
      for (const f of dec.push(b)) {
        if (f.kind !== FrameKind.Json) continue;
        const helloOk = encodeJson({ type: 'hello_ok', daemon_version: 'test', protocol: 1, pid: process.pid, mode: 'user' });
        const answer = encodeFrame(FrameKind.Json, Buffer.from(reply, 'utf8'));
        if (n++ === 0) {
          // The hello and the request arrive together; the reply goes in the same write as hello_ok, or after it.
          if (opts.sameWrite) s.write(Buffer.concat([helloOk, answer]));
          else s.write(helloOk);
        } else if (!opts.sameWrite) {
          s.end(answer);
        }
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { socketPath, stateDir: dir, autostart: false };
}

const snapshot = {
  daemon: { version: 'x', pid: 1, uptime_ms: 5, mode: 'user', socket: '/s', state_dir: '/d' },
  locks: [{ key: '/k', name: 'q "quoted" \u00e9 \u2028', holders: [], waiters: [{ id: 'a', blocked_by: ['b'], estimated_wait_ms: null }] }],
  runs: [],
  holds: [{ hold_id: 'h', locks: ['q'], nested: { x: {} } }],
};

test('the field is cut out of the frame unparsed, byte for byte what parse + stringify would give', async (t) => {
  for (const sameWrite of [false, true]) {
    const opts = await fakeDaemon(t, JSON.stringify({ type: 'status', snapshot }), { sameWrite });
    const out = await requestJsonField(opts, { type: 'status', root: null }, 'status', 'snapshot');
    t.is(out.toString('utf8'), JSON.stringify(snapshot), `reply ${sameWrite ? 'in the same write as hello_ok' : 'after hello_ok'}`);
  }
});

test('a reply in another layout is parsed and serialized again', async (t) => {
  // Members in another order, or a scalar after the snapshot. (An object member after it is ruled out by the protocol:
  // docs/protocol.md, `status`.)
  for (const reply of [JSON.stringify({ snapshot, type: 'status' }), JSON.stringify({ type: 'status', snapshot, extra: 1 })]) {
    const opts = await fakeDaemon(t, reply);
    const out = await requestJsonField(opts, { type: 'status', root: null }, 'status', 'snapshot');
    t.is(out.toString('utf8'), JSON.stringify(snapshot), reply.slice(0, 40));
  }
});

test('an error reply rejects with its code', async (t) => {
  const opts = await fakeDaemon(t, JSON.stringify({ type: 'error', code: 'bad_request', message: 'no' }));
  const e = await t.throwsAsync(requestJsonField(opts, { type: 'status', root: null }, 'status', 'snapshot'));
  t.true(isLockdError(e, 'bad_request'));
});
