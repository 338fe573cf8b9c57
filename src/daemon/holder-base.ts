/**
 * The part of a holder string that names the job rather than the process: CI holders end in `:<pid>` (or
 * `:<pid>@<host>`) so parallel matrix items differ, but `lockd acquire` and `lockd release` run as two processes of
 * one CI job and must still be recognised as the same owner.
 */
export function holderBase(holder: string): string {
  return holder.replace(/:\d+(@[^:]*)?$/, '$1').replace(/:\d+$/, '');
}
