/** What the lock table knows about whoever holds or waits: a run or an explicit hold. */
import type { HolderInfo } from '../../protocol/messages.js';
import type { ResolvedLock } from '../records/lock-resolve.js';

export interface Owner {
  kind: 'run' | 'hold';
  id: string;
  holder: string;
  user: string;
  uid: number | null;
  /** The child's pid for a running run; the acquiring client's pid for a hold; null while queued. */
  pid: number | null;
  commandLine: string | null;
  cwd: string | null;
  /** Epoch ms when it asked. */
  since: number;
  locks: ResolvedLock[];
}

export function holderInfo(o: Owner): HolderInfo {
  return {
    kind: o.kind,
    id: o.id,
    pid: o.pid,
    holder: o.holder,
    user: o.user,
    uid: o.uid,
    command_line: o.commandLine,
    since_utc: new Date(o.since).toISOString(),
    cwd: o.cwd,
  };
}

/** One line naming a lock's holder, for `lock_busy` messages: "qemu held by run 250222-2315-7f3a (pid 4242, alice: make run) since …". */
export function describeBlocker(lockName: string, o: Owner): string {
  const what = o.kind === 'run' ? `run ${o.id}` : `hold ${o.id}`;
  const pid = o.pid !== null ? `pid ${o.pid}, ` : '';
  const cmd = o.commandLine ? `: ${o.commandLine.length > 80 ? `${o.commandLine.slice(0, 77)}...` : o.commandLine}` : '';
  return `${lockName} is held by ${what} (${pid}${o.holder}${cmd}) since ${new Date(o.since).toISOString()}`;
}
