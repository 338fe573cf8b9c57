/**
 * A daemon that predates pools ignores unknown request fields, so it would run `lockd run --pool …` without any
 * member. The client checks hello_ok's `features` before it sends such a request. Against a fake daemon on a socket
 * that answers as one from before pools did (no `features`), recording every frame it is sent.
 */
import test from 'ava';
import { createServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { FrameDecoder, FrameKind, encodeJson } from '../src/protocol/framing.js';
import { baseEnv, lockd, tempDir } from './helpers/lockd.js';

async function oldDaemon(t: { teardown(fn: () => void): void }): Promise<{ env: NodeJS.ProcessEnv; received: string[] }> {
  const dir = tempDir();
  const env = baseEnv(dir);
  const received: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    const dec = new FrameDecoder();
    s.on('data', (b: Buffer) => {
      for (const f of dec.push(b)) {
        if (f.kind !== FrameKind.Json) continue;
        const msg = JSON.parse(f.payload.toString('utf8')) as { type: string };
        received.push(msg.type);
        if (msg.type === 'hello')
          s.write(encodeJson({ type: 'hello_ok', protocol: 1, version: '0.1.0', pid: process.pid, uptime_ms: 1, mode: 'user', socket: env.LOCKD_SOCKET, state_dir: env.LOCKD_STATE_DIR }));
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(env.LOCKD_SOCKET!, resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { env, received };
}

test('a daemon without the pools feature is never sent a pool request: the client fails with one clear line', async (t) => {
  const d = await oldDaemon(t);
  for (const args of [
    ['run', '--pool', 'boards', '--', 'true'],
    ['run', '--priority', '5', '--', 'true'],
    ['pool', 'list'],
  ]) {
    const r = await lockd(d, args);
    t.is(r.code, 125, `${args.join(' ')}: ${r.stderr}`);
    t.deepEqual(
      r.stderr.split('\n').filter((l) => l !== ''),
      [`lockd: the running lockd daemon (0.1.0, pid ${process.pid}) does not support pools; restart it with this version of lockd (lockd shutdown)`],
      args.join(' '),
    );
  }
  // Only hellos reached the old daemon: one per command, and one more for each `run` the native client tried first
  // before it handed over to the Node CLI (LOCKD_TEST_CLIENT=native).
  t.true(d.received.length >= 3 && d.received.every((m) => m === 'hello'), d.received.join(' '));
});
