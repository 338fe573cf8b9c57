/**
 * An etcd server of the bench's own, for the `etcdctl lock` comparison: loopback only, random free ports, data in a
 * temp dir, stopped by pid. Absent etcd/etcdctl → null, and the scenario says so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, createConnection } from 'node:net';
import { join } from 'node:path';
import { which } from './which.js';
import { stopProcess, trackStarted } from './bench-daemon.js';
import { sleep } from './timing.js';

export interface EtcdServer {
  etcdctl: string;
  endpoint: string;
  pid: number;
  stop(): Promise<void>;
}

export function etcdAvailable(): { etcd: string; etcdctl: string } | null {
  const etcd = which('etcd');
  const etcdctl = which('etcdctl');
  return etcd && etcdctl ? { etcd, etcdctl } : null;
}

/** A port nobody listens on right now (the kernel's choice); the tests' etcd helper uses it too. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Start etcd in `dir`; resolves once its client port accepts connections (bounded: 30 s). */
export async function startEtcd(dir: string): Promise<EtcdServer | null> {
  const bins = etcdAvailable();
  if (!bins) return null;
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const proc: ChildProcess = spawn(
    bins.etcd,
    [
      '--name',
      'lockd-bench',
      '--data-dir',
      join(dir, 'etcd-data'),
      '--listen-client-urls',
      client,
      '--advertise-client-urls',
      client,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `lockd-bench=${peer}`,
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  trackStarted(proc);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`etcd exited (${proc.exitCode}): ${stderr}`);
    // Accepting TCP comes before electing itself leader; `endpoint health` answers only once it serves.
    if ((await canConnect(clientPort)) && spawnSync(bins.etcdctl, ['--endpoints', client, 'endpoint', 'health'], { stdio: 'ignore', timeout: 5000 }).status === 0) {
      return { etcdctl: bins.etcdctl, endpoint: client, pid: proc.pid!, stop: () => stopProcess(proc, 5000) };
    }
    await sleep(50); // polling a port: etcd has no readiness fd
  }
  await stopProcess(proc, 2000);
  throw new Error(`etcd did not listen on ${client} within 30 s: ${stderr}`);
}
