/** A uid as a name, for "cancelled by" / "broken by" lines. Best effort: the uid itself when no name is known. */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

export function userNameOf(uid: number | null): string {
  if (uid === null) return 'unknown user';
  try {
    if (typeof process.getuid === 'function' && process.getuid() === uid) return userInfo().username;
  } catch {
    // no passwd entry for our own uid (containers): look below, then fall back
  }
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && Number(f[2]) === uid && f[0]) return f[0];
    }
  } catch {
    // no /etc/passwd (macOS keeps users elsewhere)
  }
  return `uid ${uid}`;
}
