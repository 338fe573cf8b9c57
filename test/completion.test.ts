/**
 * `lockd completion bash|zsh|fish`, through the real CLI: each script is valid for its shell, names every
 * command of the registry and every option of `run`, and (bash always, fish when installed) really completes.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, lockd, tempDir } from './helpers/lockd.js';
import { COMMANDS } from '../src/cli/registry.js';
import { RUN_OPTIONS } from '../src/cli/commands/run.js';
import { helpDescriptions, helpOptions } from '../src/cli/commands/completion.js';

const COMMAND_NAMES = Object.keys(COMMANDS);
const RUN_FLAGS = Object.keys(RUN_OPTIONS).map((k) => `--${k}`);

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

interface Fixture {
  dir: string;
  script: string;
}

async function generate(t: { teardown(fn: () => void): void }, shell: string): Promise<Fixture> {
  const dir = tempDir('cmp');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await lockd({ env: baseEnv(dir) }, ['completion', shell]);
  if (r.code !== 0) throw new Error(`lockd completion ${shell} exited ${r.code}: ${r.stderr}`);
  const script = join(dir, `lockd.${shell}`);
  writeFileSync(script, r.stdout);
  return { dir, script };
}

/** Ask the bash completion function what it offers for a command line (the last word is being completed). */
function bashComplete(f: Fixture, words: string[], cwd = f.dir): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const prog = `source '${f.script}'\nCOMP_WORDS=(${quoted}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _lockd\nprintf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', prog], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bash completion failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

test('bash: the script passes bash -n and names every command and every run option', async (t) => {
  const f = await generate(t, 'bash');
  const r = spawnSync('bash', ['-n', f.script], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const text = spawnSync('cat', [f.script], { encoding: 'utf8' }).stdout;
  for (const c of COMMAND_NAMES) t.true(text.includes(` ${c}`), c);
  for (const o of RUN_FLAGS) t.true(text.includes(o), o);
  t.regex(text, /^complete -o bashdefault -o default -F _lockd lockd$/m);
});

test('bash: completes commands, run options, option values, subcommands and the command after --', async (t) => {
  const f = await generate(t, 'bash');
  mkdirSync(join(f.dir, 'builddir'));
  t.deepEqual(
    bashComplete(f, ['lockd', ''])
      .filter((w) => !w.startsWith('-'))
      .sort(),
    [...COMMAND_NAMES].sort(),
  );
  t.deepEqual(
    bashComplete(f, ['lockd', 'ru']),
    COMMAND_NAMES.filter((c) => c.startsWith('ru')),
  );
  t.deepEqual(bashComplete(f, ['lockd', 'servi']), ['service']);
  t.deepEqual(bashComplete(f, ['lockd', 'run', '--ro']), ['--root']);
  t.deepEqual(bashComplete(f, ['lockd', 'run', '--lock', 'qemu', '--require-s']), ['--require-structured']);
  t.deepEqual(bashComplete(f, ['lockd', 'run', '--root', 'build']), ['builddir']);
  t.deepEqual(bashComplete(f, ['lockd', 'run', '--root', '=', 'build']), ['builddir']);
  t.deepEqual(bashComplete(f, ['lockd', 'service', '']), ['print', 'install', 'uninstall']);
  t.deepEqual(bashComplete(f, ['lockd', 'service', '--manager', 'sys']), ['systemd']);
  t.deepEqual(bashComplete(f, ['lockd', 'completion', 'f']), ['fish']);
  // After `--` (or the first word that is not an option) comes the command lockd runs.
  t.true(bashComplete(f, ['lockd', 'run', '--lock', 'x', '--', 'ech']).includes('echo'));
  t.true(bashComplete(f, ['lockd', 'run', '--lock', 'x', 'ech']).includes('echo'));
  // The command's own options are not lockd's.
  t.deepEqual(bashComplete(f, ['lockd', 'run', '--lock', 'x', '--', 'make', '--ro']), []);
  t.true(bashComplete(f, ['lockd', 'run', '-']).includes('--interactive'));
});

test('zsh: a #compdef script with _arguments for every command and run option (zsh -n when zsh is installed)', async (t) => {
  const f = await generate(t, 'zsh');
  const text = spawnSync('cat', [f.script], { encoding: 'utf8' }).stdout;
  t.true(text.startsWith('#compdef lockd\n'));
  for (const c of COMMAND_NAMES) {
    t.regex(text, new RegExp(`^ {8}'${c}:`, 'm'), `command list: ${c}`);
    t.regex(text, new RegExp(`^ {8}${c}\\)$`, 'm'), `case: ${c}`);
  }
  for (const o of RUN_FLAGS) t.true(text.includes(`${o}[`) || text.includes(`${o}=[`), o);
  t.true(text.includes("'*::command:_normal'"));
  if (has('zsh')) {
    const r = spawnSync('zsh', ['-n', f.script], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
  } else {
    t.log('zsh is not installed: only the structure was checked (apt-get install -y zsh for zsh -n)');
  }
});

test('fish: complete lines for every command and run option (fish -n and real completions when fish is installed)', async (t) => {
  const f = await generate(t, 'fish');
  const text = spawnSync('cat', [f.script], { encoding: 'utf8' }).stdout;
  for (const c of COMMAND_NAMES) t.true(text.includes(`complete -c lockd -n __fish_use_subcommand -a '${c}'`), c);
  for (const o of Object.keys(RUN_OPTIONS)) t.regex(text, new RegExp(`__fish_seen_subcommand_from run' -l ${o}( |$)`, 'm'), o);
  if (!has('fish')) {
    t.log('fish is not installed: only the structure was checked (apt-get install -y fish for fish -n)');
    return;
  }
  const n = spawnSync('fish', ['-n', f.script], { encoding: 'utf8' });
  t.is(n.status, 0, n.stderr);
  const complete = (line: string) =>
    spawnSync('fish', ['--no-config', '-c', `source '${f.script}'; complete -C '${line}'`], { cwd: f.dir, encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t')[0]);
  t.deepEqual(complete('lockd ru').sort(), COMMAND_NAMES.filter((c) => c.startsWith('ru')).sort());
  t.deepEqual(complete('lockd run --ro'), ['--root']);
  t.deepEqual(complete('lockd service ').sort(), ['install', 'print', 'uninstall']);
  t.deepEqual(complete('lockd service --manager ').sort(), ['launchd', 'systemd']);
});

test('completion usage errors: no shell, an unknown shell, two shells', async (t) => {
  const dir = tempDir('cmp');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const args of [['completion'], ['completion', 'tcsh'], ['completion', 'bash', 'zsh']]) {
    const r = await lockd({ env: baseEnv(dir) }, args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, /bash, zsh, fish/);
  }
});

test('options and descriptions of commands without an exported option table come from their help text', (t) => {
  const help = `Usage: lockd thing [--force] [--socket PATH] NAME
  --admin-group G members may kill/release/--force others' runs
  --limit N           how many
  -q, --quiet         say less
  --a-id ID  --b-root DIR  -x/--xray
`;
  const opts = helpOptions(help);
  t.deepEqual(opts, {
    force: { type: 'boolean' },
    socket: { type: 'string' },
    'admin-group': { type: 'string' },
    limit: { type: 'string' },
    quiet: { type: 'boolean' },
    'a-id': { type: 'string' },
    'b-root': { type: 'string' },
    xray: { type: 'boolean' },
  });
  const d = helpDescriptions(help);
  t.is(d.get('limit'), 'how many');
  t.is(d.get('quiet'), 'say less');
  t.is(d.get('admin-group'), "members may kill/release/--force others' runs");
  t.false(d.has('a-id'));
});
