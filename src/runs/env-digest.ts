/**
 * A digest of a run's environment, so two runs can be compared ("did the
 * environment change?") without storing values that may be secrets (tokens,
 * passwords) in a world-readable manifest. Not even the names are stored:
 * names such as `AWS_SECRET_ACCESS_KEY` leak what a run had access to.
 */
import { createHash } from 'node:crypto';

export interface EnvDigest {
  algorithm: 'sha256';
  /** Lowercase hex sha256 over the sorted `NAME=value` pairs, each followed by a NUL byte. */
  value: string;
  /** Number of variables digested. */
  count: number;
}

/**
 * Digest `env` (variables whose value is undefined are absent, as in
 * process.env). Pairs are sorted by name in UTF-16 code unit order, so the
 * digest does not depend on insertion order; NUL separates pairs because no
 * environment name or value can contain it, which keeps the encoding unambiguous.
 */
export function digestEnv(env: Readonly<Record<string, string | undefined>>): EnvDigest {
  const names = Object.keys(env)
    .filter((name) => env[name] !== undefined)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash('sha256');
  for (const name of names) {
    hash.update(`${name}=${env[name]}\0`, 'utf8');
  }
  return { algorithm: 'sha256', value: hash.digest('hex'), count: names.length };
}
