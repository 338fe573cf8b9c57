/**
 * The native launcher (Linux): the project's N-API addon starts the job without copying the daemon's address space,
 * in its own session, born inside its job cgroup where the host gives one; exit is watched and signals are sent
 * through a pidfd. Placeholder until the addon's launcher lands: it reports itself unavailable, with the reason.
 */
import type { Launcher } from './launcher.js';

export type NativeLoad = { ok: true; launcher: Launcher } | { ok: false; reason: string };

export function loadNativeLauncher(): NativeLoad {
  return { ok: false, reason: 'this build has no native launcher' };
}
