/** examples/pools: the Makefile flashes "any free arm64 board" for real against a real daemon with its lockd.json. */
import test from 'ava';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CLI, REPO, startDaemon, stopProcess, tempDir } from './helpers/lockd.js';

const DIR = join(REPO, 'examples', 'pools');

function make(t: { teardown(fn: () => Promise<void>): void }, env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // The stand-in flash.sh uses node: make sure the one running the tests is on PATH.
  const child = spawn('make', ['-s', '-C', DIR, `LOCKD=${process.execPath} ${CLI}`, ...args], {
    env: { ...env, PATH: `${dirname(process.execPath)}:${env.PATH ?? ''}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => stopProcess(child, 3000));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('make -j3 flash-all flashes three images on three different arm64 boards; BOARD= picks one; the disabled one is refused', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  copyFileSync(join(DIR, 'lockd.json'), join(dir, 'state', 'lockd.json'));
  const d = await startDaemon(t, { dir });
  // Each flash waits (bounded, 20 s) until all three have started: they pass only if lockd grants three boards at
  // once, so "never one board twice" does not depend on how fast the machine runs them.
  const barrier = join(dir, 'barrier');
  mkdirSync(barrier);
  const wrapper = join(dir, 'flash-together.sh');
  writeFileSync(
    wrapper,
    `#!/bin/sh\ntouch "${barrier}/$1"; i=0\nwhile [ "$(ls "${barrier}" | wc -l)" -lt 3 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\nexec "${join(DIR, 'flash.sh')}" "$@"\n`,
    { mode: 0o755 },
  );
  const all = await make(t, d.env, ['-j3', 'flash-all', `FLASH_CMD=${wrapper}`]);
  t.is(all.code, 0, all.stderr);
  const lines = all.stdout.trim().split('\n').sort();
  t.is(lines.length, 3, all.stdout);
  const boards = lines.map((l) => /^flash build\/\w+\.img on (rpi\S+) via (\/dev\/ttyUSB\d)$/.exec(l)?.[1]);
  t.true(
    boards.every((b) => b !== undefined),
    all.stdout,
  );
  t.is(new Set(boards).size, 3, 'three boards at once, never one twice');
  t.deepEqual(readdirSync(barrier).sort(), [...boards].sort() as string[], 'all three were flashing at the same time');
  const one = await make(t, d.env, ['flash', 'BOARD=rpi4-b']);
  t.is(one.stdout, 'flash build/minimal.img on rpi4-b via /dev/ttyUSB1\n', one.stderr);
  const pair = await make(t, d.env, ['pair-test']);
  t.regex(pair.stdout, /^pair: rpi\S+,rpi\S+\n$/);
  const off = await make(t, d.env, ['flash', 'BOARD=nuc']);
  t.not(off.code, 0);
  t.regex(off.stderr, /disabled: nuc: BIOS update pending/);
});
