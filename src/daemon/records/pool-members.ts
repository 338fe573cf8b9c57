/**
 * Pool members in the journal. A run's members are journaled with its locks (as exclusive locks on their member
 * lock files, named POOL/MEMBER), so that after a crash the next daemon knows them: a re-adopted `--detach` run gets
 * its members again before anyone is served (never the same board to two jobs), and a lost run's record names them.
 * A member is a lock file like any other once granted; only granting it needs the pool (locks/lock-table.ts).
 */
import type { GrantInfo } from '../../protocol/messages.js';
import type { JournalLock } from './journal.js';
import { isClusterKey } from '../locks/cluster-keys.js';

export function memberJournalLocks(grant: GrantInfo[]): JournalLock[] {
  return grant.filter((g) => g.member !== undefined).map((g) => ({ key: g.path, name: g.name, scope: isClusterKey(g.path) ? 'cluster' : 'local', mode: 'exclusive', fencing_token: g.fencing_token }));
}
