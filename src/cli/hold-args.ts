/**
 * What `lockd acquire`, `heartbeat` and `release` share: the lock options of `lockd run` (so a lock named in
 * a hold is the very lock a run names), the settings behind them, and the caller's holder identity — which is
 * how the daemon decides whose hold it is.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { asArray } from './args.js';
import { lockRefs, LOCK_OPTIONS } from './locks-arg.js';
import { Settings } from './settings.js';
import { currentUser, holderString } from '../client/holder.js';
import type { LockRef } from '../protocol/messages.js';

export { LOCK_OPTIONS };

export interface LockValues {
  socket?: string | undefined;
  'state-dir'?: string | undefined;
  root?: string | undefined;
  arch?: string | undefined;
  lock?: string[] | undefined;
  global?: string[] | undefined;
  'global-dir'?: string | undefined;
  'host-only'?: boolean | undefined;
  holder?: string | undefined;
  wait?: string | undefined;
  ttl?: string | undefined;
  'conflict-exit-code'?: string | undefined;
  'progress-interval'?: string | undefined;
}

export function holdSettings(values: LockValues, env: NodeJS.ProcessEnv = process.env): Settings {
  return new Settings(
    {
      socket: values.socket,
      state_dir: values['state-dir'],
      build_root: values.root,
      global_dir: values['global-dir'],
      holder: values.holder,
      wait: values.wait,
      ttl: values.ttl,
      conflict_exit_code: values['conflict-exit-code'],
      progress_interval: values['progress-interval'],
    },
    env,
  );
}

/** The locks named by --lock/--global plus extra local lock names (acquire's positional LOCK arguments). */
export function lockRefsFrom(values: LockValues, settings: Settings, extraLocal: string[] = []): LockRef[] {
  return lockRefs({
    locks: [...extraLocal, ...asArray(values.lock)],
    globals: asArray(values.global),
    root: resolve(settings.value('build_root')!),
    arch: values.arch,
    globalDir: settings.value('global_dir'),
    hostOnly: values['host-only'] ?? false,
  });
}

/** Who is asking: --holder / LOCKD_HOLDER, else the CI-aware holder string of this process. */
export function callerIdentity(settings: Settings, env: NodeJS.ProcessEnv = process.env): { holder: string; user: string } {
  const user = currentUser(env);
  return { holder: settings.value('holder') ?? holderString(env, process.pid, hostname(), user), user };
}
