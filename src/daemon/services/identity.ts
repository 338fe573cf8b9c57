/**
 * Who a kernel-verified uid is: name, primary group, supplementary groups, home. The system daemon needs this to
 * attribute requests (the `user` a client claims is never trusted), to decide admin rights, and to start jobs as
 * the calling user with that user's full group list and HOME.
 *
 * Lookups are synchronous on purpose: the daemon resolves a caller before it dispatches the caller's first
 * message, and an async lookup would let later frames of the same connection (a signal, stdin) overtake it.
 * The local files (/etc/passwd, /etc/group) are parsed and cached until their mtime/size changes, which costs one
 * stat per lookup. Users that only NSS knows (LDAP, sssd) are asked of `getent` / `id -G` — a short blocking
 * spawn, cached for a minute — so a directory-service outage slows the first request of such a user, never a
 * local one.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface UserIdentity {
  uid: number;
  /** Primary group (passwd's gid). */
  gid: number;
  name: string;
  home: string;
  shell: string;
  /** Primary gid first, then every group that lists the user: what initgroups(3) gives a login session. */
  groups: number[];
  /** False for a uid without a passwd entry: name is the uid in decimal, home is '/', groups are just [gid]. */
  known: boolean;
}

function isId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xfffffffe;
}

/** One passwd(5) line, or null for comments, NIS `+`/`-` lines and malformed lines. */
export function parsePasswdLine(line: string): PasswdEntry | null {
  if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) return null;
  const f = line.split(':');
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!f[0] || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!) || !isId(uid) || !isId(gid)) return null;
  return { name: f[0], uid, gid, home: f[5] ?? '', shell: f[6] ?? '' };
}

/** One group(5) line, or null. */
export function parseGroupLine(line: string): GroupEntry | null {
  if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) return null;
  const f = line.split(':');
  if (f.length < 4) return null;
  const gid = Number(f[2]);
  if (!f[0] || !/^\d+$/.test(f[2]!) || !isId(gid)) return null;
  return {
    name: f[0],
    gid,
    members: (f[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== ''),
  };
}

export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => parsePasswdLine(l.replace(/\r$/, '')))
    .filter((e): e is PasswdEntry => e !== null);
}

export function parseGroup(text: string): GroupEntry[] {
  return text
    .split('\n')
    .map((l) => parseGroupLine(l.replace(/\r$/, '')))
    .filter((e): e is GroupEntry => e !== null);
}

/** A parsed file, re-read only when its mtime or size changes. */
class CachedTable<T> {
  private key = '';
  private rows: T[] = [];

  constructor(
    private readonly path: string,
    private readonly parse: (text: string) => T[],
  ) {}

  get(): T[] {
    let key: string;
    try {
      const st = statSync(this.path);
      key = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      this.key = '';
      this.rows = [];
      return this.rows;
    }
    if (key !== this.key) {
      try {
        this.rows = this.parse(readFileSync(this.path, 'utf8'));
        this.key = key;
      } catch {
        this.rows = [];
        this.key = '';
      }
    }
    return this.rows;
  }
}

export interface UserDirectoryOptions {
  passwdPath?: string;
  groupPath?: string;
  /** Ask NSS (`getent`, `id -G`) for ids the local files do not know; default true. */
  useNss?: boolean;
  /** How long NSS answers (including "no such user") are reused; default 60 s. */
  nssTtlMs?: number;
}

const NSS_TIMEOUT_MS = 3000;

/** Run a lookup tool; its stdout, or null when it fails, times out or is missing. */
function tool(file: string, args: string[]): string | null {
  try {
    return execFileSync(file, args, { encoding: 'utf8', timeout: NSS_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
  } catch {
    return null;
  }
}

/** The user and group databases as the daemon sees them. One instance per daemon. */
export class UserDirectory {
  private readonly passwd: CachedTable<PasswdEntry>;
  private readonly group: CachedTable<GroupEntry>;
  private readonly useNss: boolean;
  private readonly nssTtlMs: number;
  private readonly nssUsers = new Map<number, { at: number; entry: PasswdEntry | null; groups: number[] | null }>();
  private readonly nssGroups = new Map<string, { at: number; entry: GroupEntry | null }>();

  constructor(opts: UserDirectoryOptions = {}) {
    this.passwd = new CachedTable(opts.passwdPath ?? '/etc/passwd', parsePasswd);
    this.group = new CachedTable(opts.groupPath ?? '/etc/group', parseGroup);
    this.useNss = opts.useNss ?? true;
    this.nssTtlMs = opts.nssTtlMs ?? 60_000;
  }

  /** The identity of a verified uid. `fallbackGid` (the peer's verified gid) is used when no passwd entry exists. */
  userByUid(uid: number, fallbackGid: number): UserIdentity {
    const local = this.passwd.get().find((e) => e.uid === uid);
    if (local) return this.identity(local, this.localGroups(local));
    const nss = this.nssUser(uid);
    if (nss?.entry) return this.identity(nss.entry, nss.groups ?? this.localGroups(nss.entry));
    return { uid, gid: fallbackGid, name: String(uid), home: '/', shell: '/bin/sh', groups: [fallbackGid], known: false };
  }

  /** A group by name (the admin group, the socket group), or null when it does not exist. */
  groupByName(name: string): GroupEntry | null {
    const local = this.group.get().find((g) => g.name === name);
    if (local) return local;
    if (!this.useNss) return null;
    const hit = this.nssGroups.get(name);
    if (hit && Date.now() - hit.at < this.nssTtlMs) return hit.entry;
    const out = tool('getent', ['group', name]);
    const entry = out ? parseGroupLine(out.split('\n')[0] ?? '') : null;
    this.nssGroups.set(name, { at: Date.now(), entry });
    return entry;
  }

  private identity(e: PasswdEntry, groups: number[]): UserIdentity {
    const all = [e.gid, ...groups.filter((g) => g !== e.gid)];
    return { uid: e.uid, gid: e.gid, name: e.name, home: e.home || '/', shell: e.shell || '/bin/sh', groups: [...new Set(all)], known: true };
  }

  private localGroups(e: PasswdEntry): number[] {
    return this.group
      .get()
      .filter((g) => g.gid === e.gid || g.members.includes(e.name))
      .map((g) => g.gid);
  }

  private nssUser(uid: number): { entry: PasswdEntry | null; groups: number[] | null } | null {
    if (!this.useNss) return null;
    const hit = this.nssUsers.get(uid);
    if (hit && Date.now() - hit.at < this.nssTtlMs) return hit;
    const out = tool('getent', ['passwd', String(uid)]);
    const entry = out ? parsePasswdLine(out.split('\n')[0] ?? '') : null;
    let groups: number[] | null = null;
    if (entry && entry.uid === uid) {
      // `id -G name` asks NSS for the supplementary groups, which a directory service may hold outside /etc/group.
      const ids = tool('id', ['-G', entry.name]);
      if (ids) groups = ids.trim().split(/\s+/).map(Number).filter(isId);
    }
    const rec = { at: Date.now(), entry: entry && entry.uid === uid ? entry : null, groups };
    this.nssUsers.set(uid, rec);
    return rec;
  }
}

// ---- holder strings ----------------------------------------------------------------------------------

/** Matches the annotation `annotateHolder` appends, and nothing a passwd name could forge inside it. */
const ANNOTATION = / \((?:by [^\s,()]+, )?uid \d+\)$/;

/**
 * The holder a system daemon records: the caller's own string (CI job names stay readable), annotated with the
 * kernel-verified user. `alice` → `alice (uid 1001)`; a claim that does not start with the verified name keeps the
 * claim and says who really made it: `root` sent by bob → `root (by bob, uid 1002)`.
 */
export function annotateHolder(claimed: string, who: Pick<UserIdentity, 'name' | 'uid'>): string {
  const base = claimedHolder(claimed);
  const own = base === who.name || base.startsWith(`${who.name}@`);
  return own ? `${base} (uid ${who.uid})` : `${base} (by ${who.name}, uid ${who.uid})`;
}

/** The caller's own part of an annotated holder (what `holderBase` and ownership comparisons work on). */
export function claimedHolder(holder: string): string {
  // Every trailing annotation goes: a client may send one (or several) of its own to look verified.
  let h = holder;
  for (let prev = ''; prev !== h; ) {
    prev = h;
    h = h.replace(ANNOTATION, '');
  }
  return h;
}

/** A safe single path component for a per-user directory (`<state>/runs/<name>`); odd names fall back to the uid. */
export function userDirName(who: Pick<UserIdentity, 'name' | 'uid'>): string {
  return /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(who.name) ? who.name : `uid-${who.uid}`;
}
