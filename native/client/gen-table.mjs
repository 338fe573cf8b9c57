#!/usr/bin/env node
/**
 * Generate native/client/run-text.h from src/client/run-text.ts (its compiled dist/src/client/run-text.js): the
 * human lines and exit codes of `lockd run`, and the keys a lockd.json may hold: one table for the Node and the
 * native client.
 *   node native/client/gen-table.mjs           write the header
 *   node native/client/gen-table.mjs --print   print it (test/native-client-table.test.ts compares)
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
export const HEADER = join(here, 'run-text.h');

const c = (s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export async function renderHeader() {
  const t = await import(pathToFileURL(join(root, 'dist', 'src', 'client', 'run-text.js')).href);
  const v = await import(pathToFileURL(join(root, 'dist', 'src', 'protocol', 'version.js')).href);
  const settings = await import(pathToFileURL(join(root, 'dist', 'src', 'cli', 'settings.js')).href);
  const lines = ['/* Generated from src/client/run-text.ts by native/client/gen-table.mjs: do not edit. */', '#ifndef LOCKD_FAST_RUN_TEXT_H', '#define LOCKD_FAST_RUN_TEXT_H', ''];
  lines.push(`#define PROTOCOL_VERSION ${v.PROTOCOL_VERSION}`, `#define LOCKD_VERSION ${c(v.LOCKD_VERSION)}`, '');
  for (const [k, v] of Object.entries(t.RUN_TEXT)) lines.push(`#define TEXT_${k.toUpperCase()} ${c(v)}`);
  lines.push(`#define TEXT_BLOCKER ${c(t.BLOCKER_TEXT)}`, `#define TEXT_BLOCKER_PID ${c(t.BLOCKER_PID)}`, `#define TEXT_BLOCKER_COMMAND ${c(t.BLOCKER_COMMAND)}`);
  lines.push(`#define BLOCKER_COMMAND_MAX ${t.BLOCKER_COMMAND_MAX}`);
  lines.push(`#define ETA_UNKNOWN ${c(t.ETA_TEXT.unknown)}`, `#define ETA_SOON ${c(t.ETA_TEXT.soon)}`, `#define ETA_ESTIMATE ${c(t.ETA_TEXT.estimate)}`, '');
  for (const [k, v] of Object.entries(t.EXIT_CODES)) lines.push(`#define EXIT_${k} ${v}`);
  lines.push('');
  const list = (name, items) => [`static const char *const ${name}[] = {`, ...items.map((i) => `    ${c(i)},`), '    0,', '};'];
  lines.push(...list('SAY_REASONS', t.SAY_REASONS), ...list('USAGE_ERROR_CODES', t.USAGE_ERROR_CODES), ...list('NOT_OBTAINED_ERROR_CODES', t.NOT_OBTAINED_ERROR_CODES));
  // Every key a lockd.json may hold without a warning (src/cli/settings.ts): any other makes the native client hand over.
  lines.push(...list('CONFIG_KEYS', [...Object.keys(settings.SETTINGS), ...settings.DAEMON_KEYS]));
  lines.push('', '#endif', '');
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = await renderHeader();
  if (process.argv.includes('--print')) process.stdout.write(text);
  else writeFileSync(HEADER, text);
}
