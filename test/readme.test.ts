/**
 * Issue 21 point 4: the README's own snippets run, as written, against a real daemon, so they cannot drift again
 * (its Make example once beat the CI default with `LOCK_WAIT ?= 0`). A fenced sh/make/js block in README.md is
 * preceded by `<!-- readme-test: NAME -->` (run by the test of that name here) or `<!-- readme-test: skip (why) -->`;
 * an unmarked one, or a name nothing here runs, fails (CONTRIBUTING.md says how to add one).
 * `lockd`, `npm` and `npx` are shims for this checkout: `lockd` is bin/lockd.js, `npx X` runs X, and `npm install`
 * is what built the checkout the suite runs on.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, REPO, lockd, startDaemon, stopProcess, type Daemon } from './helpers/lockd.js';
import { holdIdOf } from './helpers/operate.js';

interface Snippet {
  name: string;
  lang: string;
  body: string;
}

const RUNNABLE = new Set(['sh', 'bash', 'make', 'js', 'mjs', 'ts']);
const TESTED = ['quick-start', 'make-example', 'node-api'];

function readmeSnippets(): { snippets: Snippet[]; unmarked: string[] } {
  const lines = readFileSync(join(REPO, 'README.md'), 'utf8').split('\n');
  const snippets: Snippet[] = [];
  const unmarked: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w+)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const end = lines.indexOf('```', i + 1);
    const body = `${lines.slice(i + 1, end).join('\n')}\n`;
    const marker = /^<!-- readme-test: (.+?) -->$/.exec(lines[i - 1] ?? '');
    if (marker) snippets.push({ name: marker[1]!, lang: fence[1]!, body });
    else if (RUNNABLE.has(fence[1]!)) unmarked.push(`README.md:${i + 1}: ${lines[i + 1]}`);
    i = end;
  }
  return { snippets, unmarked };
}

function snippet(name: string): Snippet {
  const s = readmeSnippets().snippets.find((x) => x.name === name);
  if (!s) throw new Error(`README.md has no <!-- readme-test: ${name} --> snippet`);
  return s;
}

/** A bin dir with `lockd` (this checkout), and an env whose PATH finds it first. */
function shimEnv(d: Daemon): NodeJS.ProcessEnv {
  const bin = join(d.dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'lockd'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(join(bin, 'lockd'), 0o755);
  return { ...d.env, PATH: `${bin}:${d.env.PATH ?? ''}` };
}

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
  waitForStderr(text: string): Promise<void>;
  done: Promise<Proc>;
}

function start(t: { teardown(fn: () => Promise<void>): void }, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Proc {
  const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => stopProcess(child, 3000));
  const p = { code: null, stdout: '', stderr: '' } as Proc;
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (b: Buffer) => (p.stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => {
    p.stderr += b.toString();
    for (const w of [...waiters]) w();
  });
  p.done = new Promise((resolve) => child.once('close', (code) => resolve(Object.assign(p, { code }))));
  p.waitForStderr = (text) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${text}: ${p.stderr}`)), 30_000);
      const check = () => {
        if (!p.stderr.includes(text)) return;
        clearTimeout(timer);
        waiters.splice(waiters.indexOf(check), 1);
        resolve();
      };
      waiters.push(check);
      check();
      void p.done.then(() => {
        clearTimeout(timer);
        if (!p.stderr.includes(text)) reject(new Error(`exited before ${text}: ${p.stderr}`));
      });
    });
  return p;
}

test('every runnable README snippet is marked, and every marked one is run by a test here', (t) => {
  const { snippets, unmarked } = readmeSnippets();
  t.deepEqual(unmarked, [], 'mark each with <!-- readme-test: NAME --> or <!-- readme-test: skip (why) -->');
  const names = snippets.map((s) => s.name).filter((n) => !n.startsWith('skip'));
  t.deepEqual(names.sort(), [...TESTED].sort());
  for (const s of snippets.filter((x) => x.name.startsWith('skip'))) t.regex(s.name, /^skip \(.+\)$/, 'a skip says why');
});

test('quick start: npx lockd run --lock demo -- echo hello prints hello', async (t) => {
  const d = await startDaemon(t);
  const s = snippet('quick-start');
  const prelude = 'npm() { :; }\nnpx() { "$@"; }\n';
  const r = await start(t, 'sh', ['-ec', prelude + s.body], shimEnv(d), d.dir).done;
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello\n');
});

test('Make example: a busy lock fails fast on a developer machine, CI=true make run queues behind it, deps and lock-status run', async (t) => {
  const d = await startDaemon(t);
  const env = shimEnv(d);
  const dir = join(d.dir, 'proj');
  mkdirSync(join(dir, 'scripts'), { recursive: true });
  mkdirSync(join(dir, 'third_party'));
  writeFileSync(join(dir, 'Makefile'), snippet('make-example').body.replace(/^ {2,}(?=\$\(LOCKD\))/gm, '\t'));
  writeFileSync(join(dir, 'scripts', 'run-qemu-session.sh'), '#!/bin/sh\necho "session on $LOCKD_RUN_ID"\n');
  chmodSync(join(dir, 'scripts', 'run-qemu-session.sh'), 0o755);
  writeFileSync(join(dir, 'third_party', 'Makefile'), 'fetch:\n\t@echo fetched\n');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  // Someone holds the qemu lock of build/riscv64 (the example's defaults).
  const held = await lockd({ env }, ['acquire', '--root', 'build', '--arch', 'riscv64', 'qemu'], { cwd: dir });
  t.is(held.code, 0, held.stderr);
  const holdId = holdIdOf(held.stdout);

  const dev = await start(t, 'make', ['-s', 'run'], env, dir).done;
  t.not(dev.code, 0, 'a developer machine does not wait');
  t.regex(dev.stderr, /lock_busy: qemu is held by hold /);

  const ci = start(t, 'make', ['-s', 'run'], { ...env, CI: 'true' }, dir);
  await ci.waitForStderr('waiting for qemu');
  const rel = await lockd({ env }, ['release', holdId], { cwd: dir });
  t.is(rel.code, 0, rel.stderr);
  const r = await ci.done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^session on \S+\n$/);
  t.regex(r.stderr, /locks granted after/);

  const deps = await start(t, 'make', ['-s', 'deps'], env, dir).done;
  t.is(deps.code, 0, deps.stderr);
  t.regex(deps.stdout, /fetched/);
  const st = await start(t, 'make', ['-s', 'lock-status'], env, dir).done;
  t.is(st.code, 0, st.stderr);
});

test('Node API example: run() streams the output and resolves the exit code', async (t) => {
  const d = await startDaemon(t);
  // Inside the package (dist/, not tracked), so `import ... from 'lockd'` resolves to this checkout by its own name.
  const snippets = join(REPO, 'dist', '.readme-snippets');
  mkdirSync(snippets, { recursive: true });
  const file = join(snippets, `node-api-${process.pid}.mjs`);
  writeFileSync(file, snippet('node-api').body);
  t.teardown(() => rmSync(file, { force: true }));
  writeFileSync(join(d.dir, 'flash.sh'), '#!/bin/sh\necho "flashing slot $LOCKD_SLOT_board"\n');
  chmodSync(join(d.dir, 'flash.sh'), 0o755);
  const r = await start(t, process.execPath, [file], d.env, d.dir).done;
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'flashing slot 0\nexit 0\n');
});
