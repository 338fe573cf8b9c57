/**
 * The native client's frame parsing against a fake daemon that answers with invalid, truncated and oversized frames
 * and random bytes: it always ends (bounded), never by a signal, with one clear `lockd:` line and exit 125. Run it
 * under the sanitizers with LOCKD_FAST_BIN=build/lockd-fast-asan (node native/client/build.mjs --sanitize): any
 * AddressSanitizer or UBSan report fails the test.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { FAST_BIN, baseEnv, tempDir } from './helpers/lockd.js';

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** A fake daemon that answers every connection with the same bytes (after the client's first bytes), then closes. */
async function fakeDaemon(t: ExecutionContext): Promise<{ socket: string; dir: string; set(reply: Buffer): void }> {
  const dir = tempDir('ncz');
  const socket = join(dir, 'fake.sock');
  let reply: Buffer = Buffer.alloc(0);
  const peers = new Set<Socket>();
  const server = createServer((s) => {
    peers.add(s);
    s.on('error', () => undefined);
    s.on('close', () => peers.delete(s));
    s.once('data', () => s.end(reply));
  });
  await new Promise<void>((r) => server.listen(socket, r));
  t.teardown(() => {
    for (const p of peers) p.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { socket, dir, set: (r) => (reply = r) };
}

function runFast(env: NodeJS.ProcessEnv, cwd: string, timeoutMs = 15_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const p = spawn(FAST_BIN, ['run', '--', 'true'], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString('latin1')));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`the native client hung (${timeoutMs} ms): ${stderr}`));
    }, timeoutMs);
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr });
    });
  });
}

const frame = (kind: number, payload: Buffer, length = payload.length) => {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(length, 0);
  h.writeUInt8(kind, 4);
  return Buffer.concat([h, payload]);
};
const json = (m: unknown) => frame(0, Buffer.from(JSON.stringify(m)));
const HELLO = json({ type: 'hello_ok', protocol: 1, version: '0.1.0', pid: 1, uptime_ms: 1, mode: 'user', socket: 's', state_dir: 'd' });
const FRAMED = json({ type: 'stdio', mode: 'framed', reason: 'fuzz' });
const SANITIZER = /AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer/;

function envFor(socket: string, dir: string): NodeJS.ProcessEnv {
  // Exit paths do not free what the process holds: leak reports would be noise, the rest of ASan/UBSan is not.
  return { ...baseEnv(dir), LOCKD_SOCKET: socket, LOCKD_FAST_DEBUG: '1', ASAN_OPTIONS: 'detect_leaks=0', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' };
}

test.before((t) => {
  t.true(existsSync(FAST_BIN), `no native client at ${FAST_BIN}`);
});

const CASES: Array<[string, Buffer, RegExp]> = [
  ['an unknown frame kind', Buffer.concat([HELLO, frame(7, Buffer.from('x'))]), /^lockd: protocol error from the lockd daemon: unknown frame kind 7$/m],
  ['a stdin frame from the daemon', Buffer.concat([HELLO, frame(3, Buffer.from('x'))]), /protocol error from the lockd daemon: unknown frame kind 3/],
  ['a JSON frame over 64 MiB', Buffer.concat([HELLO, frame(0, Buffer.from('{'), 64 * 1024 * 1024 + 1)]), /exceeds the 67108864-byte limit/],
  ['a data frame over 1 MiB', Buffer.concat([HELLO, FRAMED, frame(1, Buffer.from('x'), 1024 * 1024 + 1)]), /exceeds the 1048576-byte limit/],
  ['invalid JSON', Buffer.concat([HELLO, frame(0, Buffer.from('{"type":'))]), /protocol error from the lockd daemon: a control frame that is not a JSON object/],
  ['a JSON array', Buffer.concat([HELLO, frame(0, Buffer.from('[1,2]'))]), /not a JSON object/],
  ['nesting 100,000 deep', Buffer.concat([HELLO, frame(0, Buffer.from('['.repeat(100_000)))]), /not a JSON object/],
  ['a message without a type', Buffer.concat([HELLO, json({ kind: 'finished' })]), /a control message without a type/],
  ['a message before hello_ok', json({ type: 'queued', position: 1 }), /a message before hello_ok/],
  ['finished without an outcome', Buffer.concat([HELLO, FRAMED, json({ type: 'finished' })]), /a finished message without exit_code/],
  [
    'an exit code out of range',
    Buffer.concat([HELLO, FRAMED, json({ type: 'finished', outcome: { exit_code: 1e300, reason: 'x', result_path: '/r', manifest_path: '/m' } })]),
    /exit_code is not 0\.\.255/,
  ],
  ['a string with a bad escape', Buffer.concat([HELLO, frame(0, Buffer.from('{"type":"x\\q"}'))]), /not a JSON object/],
  ['a truncated header, then EOF (before hello)', Buffer.from([0, 0, 0]), /^lockd: the lockd daemon closed the connection during the handshake$/m],
  [
    'a truncated frame, then EOF (after hello: retried once, then lost)',
    Buffer.concat([HELLO, FRAMED, frame(0, Buffer.from('{"type":"que'), 500)]),
    /^lockd: lost the connection to the lockd daemon; the run's result will be at \(unknown\)$/m,
  ],
  ['a huge announced frame cut short, then EOF', Buffer.concat([HELLO, FRAMED, frame(0, Buffer.alloc(10, 0x20), 60 * 1024 * 1024)]), /lost the connection to the lockd daemon/],
];

for (const [what, reply, expected] of CASES) {
  test(`fuzz: ${what} ends with one clear line and exit 125, no crash, no hang`, async (t) => {
    const f = await fakeDaemon(t);
    f.set(reply);
    const r = await runFast(envFor(f.socket, f.dir), f.dir);
    t.is(r.signal, null);
    t.is(r.code, 125, r.stderr);
    t.regex(r.stderr, expected);
    t.notRegex(r.stderr, SANITIZER);
    t.notRegex(r.stderr, /handing over/);
  });
}

test('fuzz: random bytes (after a good hello_ok or instead of it) never crash or hang the client', async (t) => {
  const f = await fakeDaemon(t);
  const env = envFor(f.socket, f.dir);
  // Random frames with plausible headers as well as raw noise: the headers are where the parser decides.
  const aFrame = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 64 }), fc.boolean()).map(([kind, p, honest]) => frame(kind, Buffer.from(p), honest ? p.length : p.length + 3));
  const reply = fc.tuple(
    fc.boolean(),
    fc.array(
      fc.oneof(
        aFrame,
        fc.uint8Array({ minLength: 1, maxLength: 48 }).map((u) => Buffer.from(u)),
      ),
      { minLength: 1, maxLength: 6 },
    ),
  );
  await fc.assert(
    fc.asyncProperty(reply, async ([withHello, parts]) => {
      const bytes = Buffer.concat([...(withHello ? [HELLO] : []), ...parts]);
      f.set(bytes);
      const r = await runFast(env, f.dir);
      if (r.stderr.includes('handing over')) return true; // e.g. an error frame saying protocol_mismatch: Node's turn
      t.is(r.signal, null, r.stderr);
      t.true(r.code !== null && r.code >= 0 && r.code <= 255);
      t.notRegex(r.stderr, SANITIZER);
      return r.signal === null && !SANITIZER.test(r.stderr);
    }),
    { numRuns: 80, seed: 20 },
  );
});
