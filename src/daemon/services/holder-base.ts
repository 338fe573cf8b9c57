/**
 * The part of a holder string that names the job rather than the process. CI holders (src/client/holder.ts)
 * carry the client's pid so that parallel matrix items on one box differ, but `lockd acquire` and `lockd release`
 * (or a later `lockd run`) are separate processes of one CI job and must still be recognised as the same owner.
 *
 * Per format (pid = the client's pid):
 *   ci:github:<repo>#<run>-<attempt>/<job>@<runner>:<pid>      → drop `:<pid>`
 *   ci:gitlab|jenkins|drone|bitbucket:<…>:<pid>@<host>          → drop `:<pid>`, keep `@<host>`
 *   ci:generic:<host>:<pid>                                     → drop `:<pid>` (no job identity is known there:
 *                                                                 every generic CI job on a host is one owner)
 * Anything else — an OS user name, a LOCKD_HOLDER / --holder override — is compared exactly, even when it
 * happens to end in `:<digits>` (`deploy:42` and `deploy:43` are two owners).
 */
const PID_LAST = /^(ci:(?:github|generic):.+):\d+$/;
const PID_BEFORE_HOST = /^(ci:(?:gitlab|jenkins|drone|bitbucket):.+):\d+(@[^@]*)$/;

export function holderBase(holder: string): string {
  let m = PID_LAST.exec(holder);
  if (m) return m[1]!;
  m = PID_BEFORE_HOST.exec(holder);
  if (m) return m[1]! + m[2]!;
  return holder;
}

/** Do two holder strings name the same owner (the same CI job, or the same user / override)? */
export function sameOwner(a: string, b: string): boolean {
  return a === b || holderBase(a) === holderBase(b);
}
