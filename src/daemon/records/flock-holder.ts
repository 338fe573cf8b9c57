/**
 * Real flock(2) locks on lock files, held by the daemon for as long as its table says a lock is held, so a
 * legacy `flock -n build/.locks/x.lock make deps` and a lockd job exclude each other.
 *
 * Node has no flock, so there are two backends, chosen once per holder:
 * - native (preferred): `flock()` from the lockd_native addon (native/peercred.c) on a file handle the daemon
 *   keeps open. No extra process, one open + one syscall per lock. Only ever called with LOCK_NB, so it never
 *   blocks the event loop.
 * - perl (fallback when the addon is not built — no compiler, or npm skipped the install script): ONE
 *   long-lived `perl` helper per daemon, talking a line protocol on stdin/stdout. perl ships with every Debian
 *   and macOS box and has flock built in. The helper holds the open files; when the daemon dies, however
 *   hard, the helper reads EOF and exits, so the kernel drops its flocks. It ignores SIGINT/SIGHUP so a
 *   Ctrl-C on a foreground daemon cannot drop the flocks before the daemon's own shutdown has run.
 *
 * Limits (both backends):
 * - non-blocking only: tryLock answers at once. There is no fairness against outside flock users and no
 *   wake-up when an outside holder lets go — flock has no notification, so a caller that lost to an outside
 *   holder has to poll (retry on its own timer, or when its table changes). That polling is unavoidable.
 * - one flock per path, not counted: the caller (LockGuard) counts holders. tryLock on a path already held in
 *   the same mode answers true; in the other mode it throws `flock_mode_conflict` (flock's in-place
 *   conversion is not atomic, so it is not offered).
 * - flock is per open file: paths are compared as given (resolved), so pass canonical paths.
 * - flock on NFS may be emulated with fcntl locks or not work at all; that is the kernel's business.
 *
 * Helper protocol (one request per line, one reply per line, ids chosen by us):
 *   P <id>                  ping                      -> OK <id>
 *   L <id> <ex|sh> <hex>    open + flock(LOCK_NB)     -> OK <id> | BUSY <id> | ERR <id> <ERRNO-NAME>
 *   U <id>                  unlock + close            -> OK <id>
 * The path travels hex-encoded so spaces and newlines in it cannot break the framing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { LockdError } from '../../util/errors.js';
import { loadNative, type LockdNative } from '../../util/peercred.js';
import { openLockFile } from './lock-files.js';

export type FlockMode = 'ex' | 'sh';
export type FlockBackendName = 'native' | 'perl';

export interface FlockHolderOptions {
  /** 'auto' (default): the native addon when it is built, else the perl helper. */
  backend?: 'auto' | FlockBackendName;
  /**
   * Called when the perl helper died unexpectedly: the kernel dropped its flocks, so these paths are no longer
   * flocked (the daemon's table may still hold them). The next tryLock starts a new helper.
   */
  onLost?: (paths: string[], why: LockdError) => void;
}

/** How long the perl helper may take to start and answer its first ping, and to exit on close. */
const HELPER_START_TIMEOUT_MS = 10_000;
const HELPER_EXIT_TIMEOUT_MS = 5_000;

type Token = unknown;

interface Backend {
  readonly name: FlockBackendName;
  /** The helper process, for diagnostics; null for the native backend. */
  readonly helperPid: number | null;
  /** A token for unlock when taken; null when someone else holds a conflicting flock. */
  lock(path: string, mode: FlockMode): Promise<Token | null>;
  unlock(token: Token): Promise<void>;
  close(): Promise<void>;
}

/** An errno-style error, the same shape from both backends (err.code = 'ENOENT', …). */
function systemError(code: string, path: string): Error {
  return Object.assign(new Error(`flock ${path}: ${code}`), { code, path });
}

class NativeBackend implements Backend {
  readonly name = 'native';
  readonly helperPid = null;

  constructor(private readonly native: LockdNative) {}

  async lock(path: string, mode: FlockMode): Promise<fsp.FileHandle | null> {
    const fh = await openLockFile(path);
    let taken = false;
    try {
      taken = this.native.flock(fh.fd, mode, true);
    } finally {
      if (!taken) await fh.close();
    }
    return taken ? fh : null;
  }

  async unlock(token: Token): Promise<void> {
    const fh = token as fsp.FileHandle;
    try {
      // Explicit LOCK_UN: close alone would leave the lock on if the description were ever shared.
      this.native.flock(fh.fd, 'un', true);
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    // Nothing of its own: the files it holds are closed by unlock.
  }
}

const PERL_HELPER = String.raw`
use strict; use warnings;
use Fcntl qw(O_RDONLY O_NONBLOCK O_NOFOLLOW LOCK_EX LOCK_SH LOCK_NB LOCK_UN);
$SIG{INT} = 'IGNORE'; $SIG{HUP} = 'IGNORE';
$| = 1;
my %held;
sub errname { for my $k (keys %!) { return $k if $!{$k} } return 'EIO' }
while (defined(my $line = <STDIN>)) {
  chomp $line;
  my ($op, $id, $mode, $hex) = split / /, $line;
  if ($op eq 'P') { print "OK $id\n"; next }
  if ($op eq 'U') {
    if (my $fh = delete $held{$id}) { flock($fh, LOCK_UN); close $fh }
    print "OK $id\n"; next;
  }
  if ($op ne 'L') { print "ERR $id EPROTO\n"; next }
  my $fh;
  if (!sysopen($fh, pack('H*', $hex), O_RDONLY | O_NONBLOCK | O_NOFOLLOW)) { print "ERR $id ", errname(), "\n"; next }
  if (!-f $fh) { close $fh; print "ERR $id ENOTREG\n"; next }
  if (flock($fh, ($mode eq 'sh' ? LOCK_SH : LOCK_EX) | LOCK_NB)) { $held{$id} = $fh; print "OK $id\n"; next }
  my $busy = $!{EWOULDBLOCK} || $!{EAGAIN};
  my $err = errname();
  close $fh;
  print(($busy ? "BUSY $id" : "ERR $id $err") . "\n");
}
`;

interface Pending {
  resolve(reply: string): void;
  reject(err: Error): void;
}

class PerlBackend implements Backend {
  readonly name = 'perl';
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited: LockdError | null = null;
  private closing = false;
  private stderrTail = '';
  private readonly exitPromise: Promise<void>;

  get helperPid(): number | null {
    return this.exited ? null : (this.child.pid ?? null);
  }

  private constructor(
    private readonly child: ChildProcess,
    onDeath: (err: LockdError) => void,
  ) {
    this.exitPromise = new Promise((resolveExit) => {
      const die = (why: string): void => {
        if (this.exited) return;
        this.exited = new LockdError('flock_helper_exited', `the perl flock helper ${why}${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`);
        for (const p of this.pending.values()) p.reject(this.exited);
        this.pending.clear();
        resolveExit();
        if (!this.closing) onDeath(this.exited);
      };
      child.on('error', (err) => die(`could not run (${(err as NodeJS.ErrnoException).code ?? err.message})`));
      child.on('exit', (code, signal) => die(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    });
    // EPIPE on a dead helper surfaces through 'exit'; without a listener it would be an uncaught error.
    child.stdin!.on('error', () => undefined);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-2000);
    });
    createInterface({ input: child.stdout! }).on('line', (line) => this.onReply(line));
  }

  /** Start the helper and wait for it to answer a ping, so a missing or broken perl is found up front. */
  static async start(onDeath: (err: LockdError) => void): Promise<PerlBackend> {
    const child = spawn('perl', ['-e', PERL_HELPER], { stdio: ['pipe', 'pipe', 'pipe'] });
    const backend = new PerlBackend(child, onDeath);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LockdError('flock_unavailable', `the perl flock helper did not answer within ${HELPER_START_TIMEOUT_MS} ms`)), HELPER_START_TIMEOUT_MS);
    });
    try {
      await Promise.race([backend.request('P'), timeout]);
      return backend;
    } catch (err) {
      await backend.close();
      throw err instanceof LockdError && err.code === 'flock_helper_exited' ? new LockdError('flock_unavailable', err.message) : err;
    } finally {
      clearTimeout(timer);
    }
  }

  private onReply(line: string): void {
    const [status, idText, code] = line.split(' ');
    const id = Number(idText);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.resolve(status === 'ERR' ? `ERR ${code ?? 'EIO'}` : (status ?? ''));
  }

  /** Send `<op> <id> <args>` and resolve with the reply's status ("OK", "BUSY" or "ERR <CODE>"). */
  private request(op: string, args = '', id = this.nextId++): Promise<string> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolveReply, reject) => {
      this.pending.set(id, { resolve: resolveReply, reject });
      this.child.stdin!.write(`${op} ${id}${args ? ` ${args}` : ''}\n`);
    });
  }

  async lock(path: string, mode: FlockMode): Promise<number | null> {
    const id = this.nextId++;
    const reply = await this.request('L', `${mode} ${Buffer.from(path).toString('hex')}`, id);
    if (reply === 'OK') return id;
    if (reply === 'BUSY') return null;
    const code = reply.slice(4);
    if (code === 'ELOOP' || code === 'EMLINK' || code === 'ENOTREG') {
      throw new LockdError('unsafe_lock_path', `refusing to use ${path}: it is ${code === 'ENOTREG' ? 'not a regular file' : 'a symlink'}`, { path });
    }
    throw systemError(code, path);
  }

  async unlock(token: Token): Promise<void> {
    // A dead helper already let go of everything.
    if (this.exited) return;
    await this.request('U', '', token as number);
  }

  /** EOF on stdin makes the helper exit (dropping its flocks); kill it if it does not within the bound. */
  async close(): Promise<void> {
    this.closing = true;
    if (!this.exited) this.child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), HELPER_EXIT_TIMEOUT_MS)));
    const late = await Promise.race([this.exitPromise.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      this.child.kill('SIGKILL');
      await this.exitPromise;
    }
  }
}

interface Held {
  mode: FlockMode;
  token: Token;
  backend: Backend;
}

export class FlockHolder {
  private backend: Promise<Backend> | null = null;
  private readonly held = new Map<string, Held>();
  /** Operations on one path run one after another, so two tryLocks of a path cannot both open and race. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(private readonly options: FlockHolderOptions = {}) {}

  /** A started holder, or null when neither backend works here (no addon and no usable perl). */
  static async open(options: FlockHolderOptions = {}): Promise<FlockHolder | null> {
    const holder = new FlockHolder(options);
    try {
      await holder.getBackend(); // start it now, so a missing perl shows here and not on the first lock
      return holder;
    } catch {
      await holder.close();
      return null;
    }
  }

  /** Take a non-blocking flock on `path`; false when an outside process holds a conflicting one. */
  tryLock(path: string, mode: FlockMode): Promise<boolean> {
    const key = resolve(path);
    return this.serial(key, async () => {
      if (this.closed) throw new LockdError('flock_closed', 'the flock holder is closed');
      const current = this.held.get(key);
      if (current) {
        if (current.mode === mode) return true;
        throw new LockdError('flock_mode_conflict', `${key} is already flocked ${current.mode}, cannot also take it ${mode}`, { path: key });
      }
      const backend = await this.getBackend();
      const token = await backend.lock(key, mode);
      if (token === null) return false;
      this.held.set(key, { mode, token, backend });
      return true;
    });
  }

  /** Drop the flock on `path` (and close the file); not held is fine. */
  unlock(path: string): Promise<void> {
    const key = resolve(path);
    return this.serial(key, async () => {
      const current = this.held.get(key);
      if (!current) return;
      this.held.delete(key);
      await current.backend.unlock(current.token);
    });
  }

  isLocked(path: string): boolean {
    return this.held.has(resolve(path));
  }

  /** For `status` and logs: the backend (started now if it was not), the perl helper's pid (null with the native addon), the flocks held. */
  async diagnostics(): Promise<{ backend: FlockBackendName; helperPid: number | null; held: string[] }> {
    const backend = await this.getBackend();
    return { backend: backend.name, helperPid: backend.helperPid, held: [...this.held.keys()] };
  }

  /** Release every flock and stop the helper. The holder cannot be used afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.held.keys()].map((key) => this.unlock(key)));
    const backend = this.backend;
    this.backend = null;
    if (backend)
      await backend.then(
        (b) => b.close(),
        () => undefined,
      );
  }

  private getBackend(): Promise<Backend> {
    // A failed start stays cached: retrying a missing perl on every lock would only cost time.
    this.backend ??= this.startBackend();
    return this.backend;
  }

  /** Not async on purpose: the promise it returns is the one stored in `backend`, which onHelperDeath compares. */
  private startBackend(): Promise<Backend> {
    const choice = this.options.backend ?? 'auto';
    if (choice !== 'perl') {
      const native = loadNative();
      if (native) return Promise.resolve(new NativeBackend(native));
      if (choice === 'native') return Promise.reject(new LockdError('flock_unavailable', 'the lockd_native addon is not built (run `npm run build:native`)'));
    }
    const started: Promise<Backend> = PerlBackend.start((err) => this.onHelperDeath(started, err));
    return started;
  }

  /** The helper died: its flocks are gone. Forget them, tell the owner, start afresh on the next tryLock. */
  private onHelperDeath(dead: Promise<Backend>, why: LockdError): void {
    void dead.then(
      (backend) => {
        const lost = [...this.held].filter(([, h]) => h.backend === backend).map(([key]) => key);
        for (const key of lost) this.held.delete(key);
        if (this.backend === dead) this.backend = null;
        if (lost.length > 0) this.options.onLost?.(lost, why);
      },
      () => undefined,
    );
  }

  private serial<T>(key: string, op: () => Promise<T>): Promise<T> {
    const result = (this.chains.get(key) ?? Promise.resolve()).then(op);
    const tail = result.catch(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return result;
  }
}
