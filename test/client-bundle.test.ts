/**
 * The bundled client (scripts/bundle-client.mjs, what `npm install` leaves in dist/src/cli/main.js) inlines `run`'s
 * hot path only. Every other command stays a lazy import: when the command table moved to registry.js, the bundler's
 * filter stopped matching and the bundle swallowed every command and the whole daemon (600 KB; `lockd run` 3x slower).
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from './helpers/lockd.js';

test('the client bundle inlines run and its client path, and no other command, daemon, cluster or service module', async (t) => {
  t.true(existsSync(join(REPO, 'dist', 'src', 'cli', 'main.js')), 'dist is built (npx tsc -p tsconfig.json)');
  const mod = (await import(pathToFileURL(join(REPO, 'scripts', 'bundle-client.mjs')).href)) as {
    bundleClient(o: { quiet: boolean; inputsOnly: boolean }): Promise<string[] | string>;
  };
  const inputs = await mod.bundleClient({ quiet: true, inputsOnly: true });
  t.true(Array.isArray(inputs), `bundling failed: ${String(inputs)}`);
  const files = (inputs as string[]).map((f) => f.replace(/\\/g, '/'));
  t.true(
    files.some((f) => f.endsWith('dist/src/cli/commands/run.js')),
    'run is inlined',
  );
  t.true(
    files.some((f) => f.endsWith('dist/src/client/connection.js')),
    'the client connection is inlined',
  );
  const heavy = files.filter((f) => /dist\/src\/(daemon|cluster|service|metrics)\//.test(f) || (/dist\/src\/cli\/commands\//.test(f) && !f.endsWith('/run.js')));
  t.deepEqual(heavy, [], 'nothing but the run path is inlined');
});
