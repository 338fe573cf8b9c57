/** Helpers of the cluster pool tests (test/cluster-pools*.test.ts): the shared pool, a recorder child, its intervals. */
import type { ExecutionContext } from 'ava';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEtcd, startHosts } from './etcd.js';
import { lockdSpawn, tempDir } from './lockd.js';

/** A temp dir removed when the test ends. */
export function scratch(t: ExecutionContext, prefix: string): string {
  const dir = tempDir(prefix);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const BOARDS = {
  pools: {
    boards: {
      scope: 'cluster',
      members: {
        'rpi-a': { arch: 'arm64' },
        'nuc-b': { arch: 'x86_64' },
      },
    },
  },
};

export interface Interval {
  who: string;
  members: string[];
  start: bigint;
  end: bigint;
  token: number;
}

/** A child that logs `<who> start <ns> <members> <token>` and `<who> end <ns>` around a short sleep. */
export function recorder(file: string, who: string, sleep = '0.2'): string[] {
  return ['sh', '-c', `echo "${who} start $(date +%s%N) $LOCKD_MEMBERS_boards $LOCKD_FENCING_TOKEN" >> ${file}; sleep ${sleep}; echo "${who} end $(date +%s%N)" >> ${file}`];
}

export function intervals(file: string): Interval[] {
  const starts = new Map<string, Omit<Interval, 'end' | 'who'>>();
  const out: Interval[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [who, what, ns, members, token] = line.split(' ');
    if (what === 'start') starts.set(who!, { start: BigInt(ns!), members: members!.split(','), token: Number(token) });
    else out.push({ who: who!, ...starts.get(who!)!, end: BigInt(ns!) });
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : 1));
}

/** Pairs of runs that held one member at overlapping times. */
export function sharedMember(list: Interval[]): string[] {
  const bad: string[] = [];
  for (let i = 0; i < list.length; i++)
    for (let j = i + 1; j < list.length; j++) {
      const [x, y] = [list[i]!, list[j]!];
      if (y.start < x.end && x.members.some((m) => y.members.includes(m))) bad.push(`${x.who}/${y.who}`);
    }
  return bad;
}

/** Poll a condition the test cannot wait on as an event (etcd's keys), bounded. */
export async function until<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `etcdctl get --prefix lockd/.pools/boards/m/`: member → holder value. */
export function heldMembers(e: { ctl(args: string[]): { stdout: string } }, pool = 'boards'): Record<string, { host: string; run: string; pid: number }> {
  const out = e
    .ctl(['get', '--prefix', `lockd/.pools/${pool}/m/`])
    .stdout.split('\n')
    .filter(Boolean);
  const held: Record<string, { host: string; run: string; pid: number }> = {};
  for (let i = 0; i + 1 < out.length; i += 2) held[out[i]!.split('/').pop()!] = JSON.parse(out[i + 1]!);
  return held;
}

/**
 * A real etcd, two hosts sharing BOARDS, and a run on the first host holding `member` until `release()`: the
 * start of most cross-host tests. `file` is an empty log for recorder() children; `holderPid` the job's pid.
 */
export async function hostsWithHolder(t: ExecutionContext, member = 'rpi-a', holderArgs: string[] = []) {
  const e = await startEtcd(t);
  const [a, b] = await startHosts(t, e, 2, { ttl: 5, lockdJson: BOARDS });
  const dir = scratch(t, 'cp');
  const file = join(dir, 'log');
  const go = join(dir, 'go');
  writeFileSync(file, '');
  const holder = lockdSpawn(t, a!, ['run', '--pool', 'boards', '--member', member, ...holderArgs, '--', 'sh', '-c', `echo "holding $$"; while [ ! -e ${go} ]; do sleep 0.05; done`]);
  await holder.waitForStdout(/holding \d+/);
  const holderPid = Number(/holding (\d+)/.exec(holder.stdout())![1]);
  return { e, a: a!, b: b!, dir, file, holder, holderPid, release: () => writeFileSync(go, '') };
}

/** The daemon's own record of its lost lease (daemon.log): `valid_until` is when the server could expire it. */
export function leaseLost(stateDir: string): Promise<{ valid_until: number }> {
  const logFile = join(stateDir, 'daemon.log');
  return until('the lease-lost log line', () => {
    if (!existsSync(logFile)) return null;
    const line = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('cluster lease lost'));
    return line ? (JSON.parse(line) as { valid_until: number }) : null;
  });
}
