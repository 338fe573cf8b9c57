/**
 * manifest.json: what a run is (command, where, with which locks, by whom),
 * written when the run is queued and rewritten when it starts. Its shape is a
 * public contract, described by docs/schemas/manifest.schema.json.
 */
import os from 'node:os';
import path from 'node:path';
import { writeJsonAtomic, type AtomicWriteOptions } from './atomic-write.js';
import { digestEnv, type EnvDigest } from './env-digest.js';
import { MANIFEST_FILE, RUN_SCHEMA_VERSION, readRunJson } from './run-files.js';
import { commandLineOf } from './shell-quote.js';

export type LockScope = 'local' | 'global' | 'cluster';
export type LockMode = 'exclusive' | 'shared' | 'slots';

export interface ManifestLock {
  name: string;
  scope: LockScope;
  mode: LockMode;
  /** Number of slots taken, for mode `slots`. */
  slots?: number;
  /** The lock file backing this lock. */
  path: string;
  /** Monotonic token from the lock's owner (cluster locks), to fence stale holders. */
  fencing_token?: number;
}

export interface RunManifest {
  schema_version: 1;
  run_id: string;
  /** The argv exactly as it was executed. */
  command: string[];
  /** `command` quoted for the host's shell (POSIX sh, or a Windows command line), ready to paste. */
  command_line: string;
  cwd: string;
  build_root: string | null;
  arch: string | null;
  locks: ManifestLock[];
  /** Who the locks are held for (as shown to waiters), e.g. `alice@host pid 1234`. */
  holder: string;
  user: string;
  host: string;
  client_pid: number;
  git_sha: string | null;
  queued_at_utc: string;
  /** Null while queued, and forever if the run never started. */
  start_time_utc: string | null;
  lockd_version: string;
  env_digest: EnvDigest;
  detach: boolean;
  parent_run_id: string | null;
  /** Pool members granted, by pool, with their properties (set when the run starts; absent without pools). */
  members?: Record<string, Array<{ name: string; properties: Record<string, string> }>>;
  /**
   * How the job's output reaches the caller: 'fds' (the caller's descriptors, relayed in the kernel) or 'framed'
   * (data frames over the socket), and why framed when the client asked for descriptors. Absent in older manifests.
   */
  stdio?: ManifestStdio;
}

export interface ManifestStdio {
  path: 'fds' | 'framed';
  reason: string | null;
  /** The caller's stdout was a terminal and the job wrote into a pty (known once it started). */
  terminal?: boolean;
}

export interface ManifestInput {
  runId: string;
  command: readonly string[];
  cwd: string;
  buildRoot?: string | null;
  arch?: string | null;
  locks?: readonly ManifestLock[];
  holder: string;
  /** Defaults to the daemon's own user and host name. */
  user?: string;
  host?: string;
  clientPid: number;
  /** From readGitSha(cwd); the caller reads it so this function stays synchronous. */
  gitSha?: string | null;
  queuedAt: Date;
  startTime?: Date | null;
  lockdVersion: string;
  /** The environment the command runs with; only its digest is stored. */
  env: Readonly<Record<string, string | undefined>>;
  detach?: boolean;
  parentRunId?: string | null;
  stdio?: ManifestStdio;
}

function currentUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    // userInfo() throws for uids without a passwd entry (containers).
    return process.env['USER'] ?? String(process.getuid?.() ?? 'unknown');
  }
}

function copyLock(lock: ManifestLock): ManifestLock {
  const out: ManifestLock = { name: lock.name, scope: lock.scope, mode: lock.mode, path: lock.path };
  if (lock.slots !== undefined) out.slots = lock.slots;
  if (lock.fencing_token !== undefined) out.fencing_token = lock.fencing_token;
  return out;
}

/** Build a manifest from what the daemon knows about a run. Pure apart from the user/host defaults. */
export function buildManifest(input: ManifestInput): RunManifest {
  return {
    schema_version: RUN_SCHEMA_VERSION,
    run_id: input.runId,
    command: [...input.command],
    command_line: commandLineOf(input.command),
    cwd: input.cwd,
    build_root: input.buildRoot ?? null,
    arch: input.arch ?? null,
    locks: (input.locks ?? []).map(copyLock),
    holder: input.holder,
    user: input.user ?? currentUser(),
    host: input.host ?? os.hostname(),
    client_pid: input.clientPid,
    git_sha: input.gitSha ?? null,
    queued_at_utc: input.queuedAt.toISOString(),
    start_time_utc: input.startTime ? input.startTime.toISOString() : null,
    lockd_version: input.lockdVersion,
    env_digest: digestEnv(input.env),
    detach: input.detach ?? false,
    parent_run_id: input.parentRunId ?? null,
    ...(input.stdio ? { stdio: { path: input.stdio.path, reason: input.stdio.reason } } : {}),
  };
}

/** The same manifest, marked as started at `at` (the daemon rewrites it when locks are acquired). */
export function withStartTime(manifest: RunManifest, at: Date): RunManifest {
  return { ...manifest, start_time_utc: at.toISOString() };
}

/** Atomically write `<dir>/manifest.json`; returns its path. `options` as for writeJsonAtomic (e.g. when to fsync). */
export async function writeManifest(dir: string, manifest: RunManifest, options: AtomicWriteOptions = {}): Promise<string> {
  const file = path.join(dir, MANIFEST_FILE);
  await writeJsonAtomic(file, manifest, options);
  return file;
}

/** Read `<dir>/manifest.json`, or null if it does not exist (yet, or any more). Not validated. */
export async function readManifest(dir: string): Promise<RunManifest | null> {
  return (await readRunJson(dir, MANIFEST_FILE)) as RunManifest | null;
}
