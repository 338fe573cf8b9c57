import test from 'ava';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative, peerCred, peerCredOfSocket } from '../src/util/peercred.js';
import { within } from './flock-helpers.js';

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
});

async function listen(): Promise<{ server: Server; path: string; next: () => Promise<Socket> }> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'lockd-peer-'));
  dirs.push(dir);
  const path = join(dir, 's.sock');
  const server = createServer();
  const queue: Socket[] = [];
  const waiters: Array<(s: Socket) => void> = [];
  server.on('connection', (s) => {
    const w = waiters.shift();
    if (w) w(s);
    else queue.push(s);
  });
  await within(new Promise<void>((resolve) => server.listen(path, resolve)), 10_000, 'listen');
  const next = (): Promise<Socket> =>
    within(
      new Promise<Socket>((resolve) => {
        const s = queue.shift();
        if (s) resolve(s);
        else waiters.push(resolve);
      }),
      20_000,
      'a connection',
    );
  return { server, path, next };
}

test('the addon is built and loads', (t) => {
  const native = loadNative();
  t.not(native, null, 'build it with `node-gyp rebuild` (the install script)');
  t.is(typeof native?.peerCred, 'function');
});

test('peerCredOfSocket: a connection from this process reports our own pid, uid and gid', async (t) => {
  const { server, path, next } = await listen();
  const client = connect(path);
  try {
    const accepted = await next();
    t.deepEqual(peerCredOfSocket(accepted), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    accepted.destroy();
  } finally {
    client.destroy();
    server.close();
  }
});

test('peerCredOfSocket: a connection from a child process reports the child, not us', async (t) => {
  const { server, path, next } = await listen();
  const child = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(path)}); setTimeout(() => {}, 60000)`], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const accepted = await next();
    const cred = peerCredOfSocket(accepted);
    t.is(cred?.pid, child.pid);
    t.not(cred?.pid, process.pid);
    t.is(cred?.uid, process.getuid!());
    accepted.destroy();
  } finally {
    child.kill('SIGKILL');
    await within(exited, 20_000, 'the child to exit');
    server.close();
  }
});

test('peerCredOfSocket: a destroyed socket has no fd and gives null', async (t) => {
  const { server, path, next } = await listen();
  const client = connect(path);
  try {
    const accepted = await next();
    accepted.destroy();
    t.is(peerCredOfSocket(accepted), null);
  } finally {
    client.destroy();
    server.close();
  }
});

test('peerCred on a file descriptor that is not a socket throws ENOTSOCK', async (t) => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'lockd-peer-'));
  dirs.push(dir);
  const fh = await fsp.open(join(dir, 'plain'), 'w');
  try {
    const err = t.throws(() => peerCred(fh.fd));
    t.is((err as { code?: string }).code, 'ENOTSOCK');
    t.is((err as { syscall?: string }).syscall, process.platform === 'linux' ? 'getsockopt(SO_PEERCRED)' : 'getpeereid');
  } finally {
    await fh.close();
  }
});

test('peerCred rejects a bad argument with a TypeError', (t) => {
  t.throws(() => loadNative()!.peerCred('3' as unknown as number), { instanceOf: TypeError });
});
