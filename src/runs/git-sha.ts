/**
 * The commit a run was started from, read straight from the repository files.
 *
 * Spawning `git rev-parse` for every run would cost a process start (tens of
 * ms, more on a loaded box) on the daemon's hot path, so we read the handful
 * of small files git itself would read:
 *
 *   <worktree>/.git            a directory, or a file `gitdir: <path>` (linked
 *                              worktrees, submodules)
 *   <gitdir>/commondir         linked worktrees: where shared refs live
 *   <gitdir>/HEAD              `ref: refs/heads/x` or a detached object id
 *   <dir>/refs/heads/x         loose ref (per-worktree dir first, then common)
 *   <commondir>/packed-refs    packed refs
 *
 * Anything we cannot resolve (not a repository, unborn branch, the reftable
 * ref backend, a corrupt file) yields null: the sha is informational.
 *
 * Read with synchronous calls, on purpose: this is on every run's start path,
 * and the files are a few tiny ones next to the build tree. Each asynchronous
 * call was a trip through libuv's thread pool and back (and fs.promises'
 * readFile is four: open, fstat, read, close), about 14 trips in series for a
 * linked worktree, 1-2 ms on a loaded 2-CPU machine; the synchronous reads
 * take tens of µs. The daemon already stats the run's cwd synchronously
 * before the launch, so a hung file system under the build tree blocks it
 * there either way.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** SHA-1 (40) or SHA-256 (64) object ids. */
const OBJECT_ID_RE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** Symbolic refs can point at symbolic refs; git caps the chain at 5 too. */
const MAX_SYMREF_DEPTH = 5;

function readSmallFile(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function isDirectory(p: string): boolean | null {
  try {
    return statSync(p).isDirectory();
  } catch {
    return null; // missing (or unreadable): not a repository marker
  }
}

/** Find the git directory for `cwd` by walking up to the filesystem root. */
function findGitDir(cwd: string): string | null {
  let dir = path.resolve(cwd);
  for (;;) {
    const candidate = path.join(dir, '.git');
    const kind = isDirectory(candidate);
    if (kind === true) return candidate;
    if (kind === false) {
      // A `.git` file: `gitdir: <path>`, relative paths are relative to the file's directory.
      const text = readSmallFile(candidate);
      const m = text ? /^gitdir:\s*(.+?)\s*$/m.exec(text) : null;
      return m ? path.resolve(dir, m[1]!) : null;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** Reject ref names that could escape the git directory. */
function isSafeRefName(ref: string): boolean {
  return ref.startsWith('refs/') && !ref.split('/').some((part) => part === '' || part === '.' || part === '..') && !ref.includes('\\');
}

function lookupPackedRef(commonDir: string, ref: string): string | null {
  const text = readSmallFile(path.join(commonDir, 'packed-refs'));
  if (text === null) return null;
  // Lines are `<oid> <refname>`; the `# pack-refs with:` header and `^<oid>`
  // peeled-tag lines never end in ` <refname>`. Search instead of splitting:
  // packed-refs of big repositories holds hundreds of thousands of lines.
  const needle = ` ${ref}`;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) {
    const end = at + needle.length;
    if (end !== text.length && text[end] !== '\n' && text[end] !== '\r') continue;
    const lineStart = text.lastIndexOf('\n', at) + 1;
    const oid = text.slice(lineStart, at).toLowerCase();
    if (OBJECT_ID_RE.test(oid)) return oid;
  }
  return null;
}

/** Resolve the content of HEAD or of a ref file to an object id. */
function resolveRefContent(content: string, gitDir: string, commonDir: string, depth: number): string | null {
  const value = content.trim();
  const lower = value.toLowerCase();
  if (OBJECT_ID_RE.test(lower)) return lower;
  const m = /^ref:\s*(\S+)$/.exec(value);
  if (!m || depth >= MAX_SYMREF_DEPTH) return null;
  const ref = m[1]!;
  if (!isSafeRefName(ref)) return null;
  // Per-worktree refs live in the worktree's own git dir, shared refs in the
  // common dir; trying both in this order matches git for the refs we care about.
  for (const base of gitDir === commonDir ? [gitDir] : [gitDir, commonDir]) {
    const loose = readSmallFile(path.join(base, ref));
    if (loose !== null) return resolveRefContent(loose, gitDir, commonDir, depth + 1);
  }
  return lookupPackedRef(commonDir, ref);
}

/** The commit checked out at `cwd`, or null when `cwd` is not in a git work tree or HEAD is unresolvable. */
export async function readGitSha(cwd: string): Promise<string | null> {
  const gitDir = findGitDir(cwd);
  if (gitDir === null) return null;
  const head = readSmallFile(path.join(gitDir, 'HEAD'));
  if (head === null) return null;
  const commonRel = readSmallFile(path.join(gitDir, 'commondir'));
  const commonDir = commonRel === null ? gitDir : path.resolve(gitDir, commonRel.trim());
  return resolveRefContent(head, gitDir, commonDir, 0);
}
