/**
 * Shared helpers for the run-record tests: temp dirs and JSON Schema
 * validation of every manifest/result the tests produce.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ExecutionContext } from 'ava';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function loadSchema(name: string): Promise<object> {
  return JSON.parse(await readFile(path.join(repoRoot, 'docs', 'schemas', name), 'utf8')) as object;
}

const ajv = new Ajv2020({ allErrors: true, strict: true });
const validateManifestFn = ajv.compile(await loadSchema('manifest.schema.json'));
const validateResultFn = ajv.compile(await loadSchema('result.schema.json'));

function check(t: ExecutionContext, fn: typeof validateManifestFn, value: unknown, what: string): void {
  const ok = fn(value);
  t.true(ok, `${what} violates its schema: ${ajv.errorsText(fn.errors)}`);
}

/** Assert `value` (or the JSON file at `file`) matches docs/schemas/manifest.schema.json. */
export function assertValidManifest(t: ExecutionContext, value: unknown): void {
  check(t, validateManifestFn, value, 'manifest');
}

/** Assert `value` matches docs/schemas/result.schema.json. */
export function assertValidResult(t: ExecutionContext, value: unknown): void {
  check(t, validateResultFn, value, 'result');
}

export function manifestSchemaAccepts(value: unknown): boolean {
  return validateManifestFn(value) as boolean;
}

export function resultSchemaAccepts(value: unknown): boolean {
  return validateResultFn(value) as boolean;
}

export async function readJson(file: string): Promise<unknown> {
  return JSON.parse(await readFile(file, 'utf8')) as unknown;
}

/** A fresh temp dir removed when the test ends (pass or fail). */
export async function tempDir(t: ExecutionContext, prefix = 'lockd-runs-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export { repoRoot };
