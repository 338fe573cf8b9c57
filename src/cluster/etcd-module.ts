/**
 * Loading the cluster backend. etcd3 (with @grpc/grpc-js and protobufjs, about forty packages) is an optional peer
 * dependency: only cluster mode needs it, so a plain `npm install lockd` does not bring it. Everything that imports
 * etcd3 is reached through `loadClusterBackend()` alone, and only when a cluster is configured; when the package is
 * missing this says so in one line, with the command that fixes it. Importing this file loads nothing.
 * (`npm run lint` checks that nothing outside src/cluster/ imports the etcd3 side statically: scripts/check-imports.mjs.)
 */
import { LockdError } from '../util/errors.js';

export const CLUSTER_CLIENT_MISSING = 'cluster_client_missing';

/** The one line a user sees when a cluster is configured and etcd3 cannot be loaded. */
export const ETCD3_MISSING_MESSAGE = 'cluster mode needs the optional package etcd3: npm install etcd3';

/** The module name a "cannot find" error is about, or null when `e` is another error. */
function missingModule(e: unknown): string | null {
  const err = e as { code?: unknown; message?: unknown } | null;
  const message = typeof err?.message === 'string' ? err.message : '';
  const notFound = err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND' || /^Cannot find (package|module) /.test(message);
  if (!notFound) return null;
  return /Cannot find (?:package|module) '([^']+)'/.exec(message)?.[1] ?? '?';
}

/**
 * Load etcd3, or throw `cluster_client_missing`. A missing package of etcd3's own (a damaged install) is named too:
 * reinstalling etcd3 fixes both.
 */
export async function requireEtcd3(): Promise<void> {
  try {
    await import('etcd3');
  } catch (e) {
    const name = missingModule(e);
    if (name === null) throw e;
    const which = name === 'etcd3' || name.startsWith('etcd3/') ? '' : ` (etcd3 is there, but its dependency ${name} is not)`;
    throw new LockdError(CLUSTER_CLIENT_MISSING, `${ETCD3_MISSING_MESSAGE}${which}`);
  }
}

/** The cluster backend (src/cluster/open.ts), after `requireEtcd3()`. */
export async function loadClusterBackend(): Promise<typeof import('./open.js')> {
  await requireEtcd3();
  return import('./open.js');
}
