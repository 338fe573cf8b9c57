/**
 * The lock files on disk. lockd's own table is the truth, but while a lock is held the daemon also keeps
 * `<lock file>` and `<lock file>.meta` so `ls .locks/`, `cat x.lock.meta` and old scripts keep working, and so a
 * legacy `flock x.lock …` user and lockd can exclude each other (flock-holder.ts holds the flock itself).
 *
 * Release removes only the `.meta`. The `.lock` file stays: a flock lives on an open file, not on a name, so
 * unlinking a lock file that someone else has open (or is blocked on) lets a third process create a fresh
 * file under the same name and lock it too — two "holders". An idle lock file without a `.meta` is therefore
 * the normal state, and `status` / `clean-stale` read the `.meta` to know who holds what.
 *
 * The daemon may run as root (system mode) and writes into directories named by its clients, so nothing
 * here follows a symlink someone else planted:
 * - every directory component of the lock path is lstat'ed; a symlink is followed only when root owns it
 *   (e.g. macOS /tmp -> private/tmp), or when both the link and the directory it points to are owned by the
 *   requesting uid; anything else is refused with code `unsafe_lock_path`;
 * - the lock file is opened with O_NOFOLLOW (a planted `x.lock -> /etc/passwd` is refused, never written
 *   through — and the lock file is only ever opened read-only anyway) and must be a regular file;
 * - the `.meta` is written to a fresh O_EXCL|O_NOFOLLOW temp file and renamed into place (atomic for
 *   readers; rename replaces a planted symlink instead of following it); reads use O_NOFOLLOW too.
 * Directories and lock files the daemon creates as root for another uid are chowned to that uid, so the
 * user can still `rm -rf` their build tree.
 * Not covered: a directory swapped for a symlink between the check and the open (no openat() in Node), and
 * a real directory owned by some other user (ownership of plain directories is not checked).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc, promises as fsp, type Stats } from 'node:fs';
import { basename, dirname, join, parse, resolve, sep } from 'node:path';
import { LockdError, errnoCode } from '../../util/errors.js';
import { UserDirectory } from '../services/identity.js';

/**
 * What `<lock file>.meta` holds while the lock is held (JSON, snake_case like the scripts lockd replaces).
 * A type alias, not an interface, so it stays assignable to Record<string, unknown> (lock-guard.ts's MetaWriter).
 */
export type LockMeta = {
  /** The process using the lock: the run's child, or the holding client for a `hold`. */
  pid: number;
  /** Start time of `pid` from util/proc.ts processStartTime() (opaque), so stale checks survive pid reuse; null when unknown. */
  pid_start_time: string | null;
  start_utc: string;
  start_epoch: number;
  cwd: string;
  cmd: string;
  run_id?: string;
  hold_id?: string;
  holder: string;
  lockd_pid: number;
  mode?: 'ex' | 'sh';
};

/**
 * A `.meta` as read back: only `pid` is guaranteed, because metas written by the legacy lock scripts carry
 * just pid/start_utc/start_epoch/cwd/cmd.
 */
export type StoredMeta = Partial<LockMeta> & { pid: number };

export interface PrepareOptions {
  /**
   * The uid the lock is created for (the requesting client's; in per-user mode the daemon's own). null when the
   * client's uid is unknown: the daemon's own uid is used, so a root daemon then trusts root-owned links only.
   */
  uid: number | null;
  /** Group for files created as root on the client's behalf; unchanged when omitted. */
  gid?: number;
}

export const META_SUFFIX = '.meta';
/** Far above any real meta; a bigger file is not ours, so it is not read into memory. */
const MAX_META_BYTES = 64 * 1024;

export function metaPathOf(lockPath: string): string {
  return lockPath + META_SUFFIX;
}

function unsafe(path: string, why: string, details: Record<string, unknown> = {}): LockdError {
  return new LockdError('unsafe_lock_path', `refusing to use ${path}: ${why}`, { path, ...details });
}

/** Who the files are for, with an unknown uid replaced by the daemon's own. gid -1 = leave as created. */
interface Owner {
  uid: number;
  gid: number;
}

function daemonUid(): number {
  return typeof process.geteuid === 'function' ? process.geteuid() : 0;
}

let users: UserDirectory | null = null;

/** The primary group of a uid the root daemon creates files for, so they are not left in root's group. */
function primaryGid(uid: number): number {
  if (daemonUid() !== 0 || uid === 0) return -1;
  users ??= new UserDirectory();
  const id = users.userByUid(uid, -1);
  return id.known ? id.gid : -1;
}

function ownerOf(opts: PrepareOptions): Owner {
  const uid = opts.uid ?? daemonUid();
  return { uid, gid: opts.gid ?? primaryGid(uid) };
}

/** Root creating on another uid's behalf gives what it created to that uid. */
function mustChown(owner: Owner): boolean {
  return daemonUid() === 0 && owner.uid !== 0;
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await fsp.lstat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

/** A symlink in the lock path is followed only if root planted it, or the requester owns it and its target. */
async function checkSymlink(path: string, link: Stats, owner: Owner): Promise<void> {
  if (link.uid === 0) return;
  if (link.uid !== owner.uid) throw unsafe(path, `it is a symlink owned by uid ${link.uid}, not by uid ${owner.uid}`, { owner: link.uid });
  let target: Stats;
  try {
    target = await fsp.stat(path);
  } catch (err) {
    throw unsafe(path, `it is a symlink whose target cannot be used (${errnoCode(err) ?? String(err)})`);
  }
  if (!target.isDirectory()) throw unsafe(path, 'it is a symlink to something that is not a directory');
  if (target.uid !== owner.uid) {
    throw unsafe(path, `it is a symlink to a directory owned by uid ${target.uid}, not by uid ${owner.uid}`, { owner: target.uid });
  }
}

/**
 * For readers that walk lock directories (clean-stale): true when `path` is a directory, or a symlink to one
 * that the rule above trusts for `uid`; false when it is missing or not a directory. Throws `unsafe_lock_path`
 * for a symlink it must not follow.
 */
export async function isUsableDirectory(path: string, uid: number | null): Promise<boolean> {
  const st = await lstatOrNull(path);
  if (st === null) return false;
  if (!st.isSymbolicLink()) return st.isDirectory();
  await checkSymlink(path, st, ownerOf({ uid }));
  return true;
}

/** `mkdir -p` for one component, without following a symlink we may not trust. */
async function ensureDirComponent(path: string, owner: Owner): Promise<void> {
  // After our own mkdir (or losing a mkdir race to someone else) look again, to see what is really there.
  for (let round = 0; round < 3; round++) {
    const st = await lstatOrNull(path);
    if (st === null) {
      try {
        await fsp.mkdir(path);
        if (mustChown(owner)) await fsp.lchown(path, owner.uid, owner.gid);
        // A .locks/ we create keeps itself out of `git status`: lock files are never something to commit.
        if (basename(path) === '.locks') await writeOwnGitignore(path, owner);
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
      continue;
    }
    if (st.isSymbolicLink()) return checkSymlink(path, st, owner);
    if (st.isDirectory()) return;
    throw unsafe(path, 'it exists and is not a directory');
  }
  throw unsafe(path, 'it keeps changing while being created');
}

async function writeOwnGitignore(dir: string, owner: Owner): Promise<void> {
  try {
    const fh = await openNoFollow(join(dir, '.gitignore'), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
    try {
      await fh.writeFile('*\n');
      if (mustChown(owner)) await fh.chown(owner.uid, owner.gid);
    } finally {
      await fh.close();
    }
  } catch {
    // Best effort: a missing .gitignore never stops a lock.
  }
}

/** `/a/b/c` → `/a`, `/a/b`, `/a/b/c`. */
function dirComponents(dir: string): string[] {
  const { root } = parse(dir);
  const components: string[] = [];
  let current = root;
  for (const name of dir.slice(root.length).split(sep)) {
    if (name === '') continue;
    current = join(current, name);
    components.push(current);
  }
  return components;
}

async function ensureSafeDir(dir: string, owner: Owner): Promise<void> {
  for (const p of dirComponents(dir)) await ensureDirComponent(p, owner);
}

/** What lstat says `path` is, without following a final symlink: null when missing or unreadable. */
async function lstatKind(path: string): Promise<'dir' | 'file' | 'other' | null> {
  try {
    const st = await fsp.lstat(path);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch {
    return null;
  }
}

/**
 * The common case on every run's start path: the lock file is already there, a regular file, and every directory
 * above it a plain directory (no symlink anywhere). One lstat each, all at once: the walk below did one thread-pool
 * round trip per level in series, then opened and closed the file. Nothing is trusted from this beyond "nothing
 * to create or check further": the flock itself opens the file with O_NOFOLLOW and checks it is a regular file
 * (openLockFile), as before. Anything else (missing, a symlink, an error) takes the walk.
 */
async function alreadyPrepared(abs: string): Promise<boolean> {
  const kinds = await Promise.all([...dirComponents(dirname(abs)), abs].map(lstatKind));
  return kinds.at(-1) === 'file' && kinds.slice(0, -1).every((k) => k === 'dir');
}

/** Open without following a final symlink; ELOOP (EMLINK on the BSDs) means the name is a symlink. */
async function openNoFollow(path: string, flags: number, mode?: number): Promise<fsp.FileHandle> {
  try {
    return await fsp.open(path, flags | fsc.O_NOFOLLOW, mode);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ELOOP' || code === 'EMLINK') throw unsafe(path, 'it is a symlink');
    throw err;
  }
}

/**
 * Open an existing lock file read-only (O_NONBLOCK: a FIFO planted under its name must not hang us), refusing a
 * symlink or anything but a regular file. flock-holder.ts takes its flock on such a handle.
 */
export async function openLockFile(lockPath: string): Promise<fsp.FileHandle> {
  const fh = await openNoFollow(lockPath, fsc.O_RDONLY | fsc.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw unsafe(lockPath, 'it is not a regular file');
  } catch (err) {
    await fh.close();
    throw err;
  }
  return fh;
}

/**
 * Make sure `lockPath` exists as a regular file in a safe directory, creating what is missing. The lock file's
 * content is never written: it is only ever opened read-only.
 */
export async function prepareLockFile(lockPath: string, opts: PrepareOptions): Promise<void> {
  const abs = resolve(lockPath);
  const owner = ownerOf(opts);
  if (await alreadyPrepared(abs)) return;
  await ensureSafeDir(dirname(abs), owner);
  // The lock file may exist (a symlink above it that passes the checks): open it as it is first (the create below
  // used to come first and fail with EEXIST each time, one wasted round trip). Missing: created as before.
  try {
    await (await openLockFile(abs)).close();
    return;
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  let fh: fsp.FileHandle;
  try {
    fh = await openNoFollow(abs, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
    await (await openLockFile(abs)).close();
    return;
  }
  try {
    if (mustChown(owner)) await fh.chown(owner.uid, owner.gid);
  } finally {
    await fh.close();
  }
}

/** Replace `<lockPath>.meta` atomically: readers see the old meta or the new one, never half of one. */
export async function writeMeta(lockPath: string, meta: LockMeta): Promise<void> {
  const target = metaPathOf(resolve(lockPath));
  // Hidden temp name, so `ls .locks/` and clean-stale's `*.meta` scan never see it.
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await openNoFollow(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  try {
    try {
      await fh.writeFile(`${JSON.stringify(meta, null, 2)}\n`);
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/** Remove `<lockPath>.meta`; already gone is fine. The `.lock` file itself stays (see the top of this file). */
export async function removeMeta(lockPath: string): Promise<void> {
  try {
    await fsp.unlink(metaPathOf(resolve(lockPath)));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

/** Legacy scripts may have written `key=value` lines instead of JSON. */
function parseKeyValue(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

const NUMERIC_FIELDS = ['pid', 'start_epoch', 'lockd_pid'] as const;

/** Parse a meta's text; null when it is not a meta (no positive integer pid). Never echoes the text. */
export function parseMeta(text: string): StoredMeta | null {
  let raw: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
    raw = parsed as Record<string, unknown>;
  } catch {
    raw = parseKeyValue(text);
  }
  for (const key of NUMERIC_FIELDS) {
    const v = raw[key];
    if (typeof v === 'string' && /^\d+$/.test(v)) raw[key] = Number(v);
  }
  // Start times are opaque strings (util/proc.ts); a hand-written meta may hold a number.
  if (typeof raw.pid_start_time === 'number') raw.pid_start_time = String(raw.pid_start_time);
  const pid = raw.pid;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  return raw as StoredMeta;
}

/**
 * Read `<lockPath>.meta`: null when there is none; throws LockdError `bad_meta` when the file is there but is
 * not a meta (unreadable, too big, no pid). Opened with O_NOFOLLOW so a planted symlink is not read through.
 */
export async function readMeta(lockPath: string): Promise<StoredMeta | null> {
  const path = metaPathOf(resolve(lockPath));
  let fh: fsp.FileHandle;
  try {
    fh = await openNoFollow(path, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    if (err instanceof LockdError) throw new LockdError('bad_meta', `${path} is a symlink, not a lock meta`, { path });
    throw err;
  }
  let text: string;
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_META_BYTES) throw new LockdError('bad_meta', `${path} is not a lock meta file`, { path });
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  const meta = parseMeta(text);
  if (!meta) throw new LockdError('bad_meta', `${path} does not hold a lock meta (no valid pid)`, { path });
  return meta;
}
