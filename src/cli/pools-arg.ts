/** `--pool NAME[:COUNT]`, `--where KEY=VALUE`, `--member NAME` → the protocol's pool references. */
import type { PoolRef } from '../protocol/messages.js';
import { LockdError } from '../util/errors.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function poolRefs(pools: string[], where: string[], member: string | undefined): PoolRef[] {
  if ((where.length > 0 || member !== undefined) && pools.length !== 1) {
    throw new LockdError('usage', '--where and --member need exactly one --pool (they filter its members)');
  }
  const conditions: Record<string, string> = {};
  for (const w of where) {
    const at = w.indexOf('=');
    if (at <= 0) throw new LockdError('usage', `--where must be KEY=VALUE, not ${JSON.stringify(w)}`);
    conditions[w.slice(0, at)] = w.slice(at + 1);
  }
  if (member !== undefined && !NAME.test(member)) throw new LockdError('usage', `--member ${JSON.stringify(member)} is not a member name (letters, digits, . _ -)`);
  const seen = new Set<string>();
  return pools.map((spec) => {
    const m = /^([^:]+)(?::(\d+))?$/.exec(spec);
    if (!m || !NAME.test(m[1]!)) throw new LockdError('usage', `--pool must be NAME or NAME:COUNT, not ${JSON.stringify(spec)}`);
    const count = m[2] === undefined ? 1 : Number(m[2]);
    if (!Number.isSafeInteger(count) || count < 1 || count > 100_000) throw new LockdError('usage', `--pool ${spec}: COUNT must be an integer from 1 to 100000`);
    if (seen.has(m[1]!)) throw new LockdError('usage', `--pool ${m[1]} is given twice; ask for NAME:COUNT once`);
    seen.add(m[1]!);
    return { pool: m[1]!, count, where: { ...conditions }, member: member ?? null };
  });
}
