/** Who is asking on a connection (ports.ts `Callers`): kernel-verified where the platform tells, else the claim. */
import type { Connection } from '../server/connection.js';
import type { Callers } from '../ports.js';
import { processGids } from '../../util/proc.js';

export class DaemonCallers implements Callers {
  /** Groups whose members are lockd admins (system mode sets them at start-up). */
  adminGids: number[] = [];
  /** System mode decides admin membership itself (system-mode.ts); null per user. */
  systemAdmin: ((conn: Connection) => boolean) | null = null;

  uidOf(conn: Connection): number | null {
    if (conn.peer) return conn.peer.uid;
    return typeof process.getuid === 'function' ? process.getuid() : null;
  }

  pidOf(conn: Connection, claimed: number): number {
    return conn.peer?.pid ?? claimed;
  }

  isAdmin(conn: Connection): boolean {
    if (this.systemAdmin) return this.systemAdmin(conn);
    if (!conn.peer) return false;
    if (conn.peer.uid === 0) return true;
    return this.adminGids.length > 0 && (processGids(conn.peer.pid) ?? [conn.peer.gid]).some((g) => this.adminGids.includes(g));
  }
}
