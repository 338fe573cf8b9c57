/**
 * Which launcher this daemon uses (jobs/launcher.ts), decided once at start-up: `LOCKD_LAUNCHER=native|portable`
 * forces one (a forced `native` that cannot load is a start-up error, never a silent fallback); otherwise native
 * where it loads (Linux with the addon), portable elsewhere. The reason is kept for status, doctor and the log.
 */
import { LockdError } from '../../util/errors.js';
import type { Launcher } from './launcher.js';
import { PortableLauncher } from './launcher-portable.js';
import { loadNativeLauncher } from './launcher-native.js';
import { nativeOrigin } from '../../util/peercred.js';

/** A prebuilt binary or a local build, named by its last path parts. */
function addonOrigin(): string {
  const file = nativeOrigin().file ?? 'an unknown place';
  return file.split(/[\\/]/).slice(-3).join('/');
}

export interface LauncherChoice {
  launcher: Launcher;
  /** Why this one: forced by LOCKD_LAUNCHER, or what the host offered. */
  reason: string;
}

export function selectLauncher(env: NodeJS.ProcessEnv = process.env): LauncherChoice {
  const forced = env.LOCKD_LAUNCHER?.trim() || null;
  if (forced !== null && forced !== 'native' && forced !== 'portable') {
    throw new LockdError('bad_option', `LOCKD_LAUNCHER must be native or portable, not ${JSON.stringify(forced)}`);
  }
  if (forced === 'portable') return { launcher: new PortableLauncher(), reason: 'LOCKD_LAUNCHER=portable' };
  const native = loadNativeLauncher();
  if (forced === 'native') {
    if (!native.ok) throw new LockdError('launcher_unavailable', `LOCKD_LAUNCHER=native, but the native launcher cannot be used here: ${native.reason}`);
    return { launcher: native.launcher, reason: 'LOCKD_LAUNCHER=native' };
  }
  if (native.ok) return { launcher: native.launcher, reason: `the native addon loaded from ${addonOrigin()}` };
  return { launcher: new PortableLauncher(), reason: `native launcher unavailable: ${native.reason}` };
}
