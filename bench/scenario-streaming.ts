/**
 * Scenario 4, output streaming: `lockd run -- cat FILE` into a pipe vs `cat FILE` alone, read by the bench as fast
 * as it can (throughput from first to last byte, so process start-up does not count). Then a slow reader: the bench
 * reads lockd's stdout at a trickle while sampling the daemon's RSS, which must stay bounded (backpressure reaches
 * the child instead of piling up in the daemon). Every lockd run also writes its output.log, as in real use.
 * Beside them, `cat FILE | node | node` (two processes that only pass the bytes on): what any path through two Node
 * processes gets on this machine, so lockd's own costs can be told from the architecture's.
 * lockd is measured on both output paths (docs/protocol.md, "Descriptor passing"): `fds` (the default: the client
 * passes its stdout, the daemon's relay threads tee/splice the job's pipe to it and to output.log) and `framed`
 * (LOCKD_STDIO=framed: data frames through the daemon and the client), with the daemon's CPU per GiB for each.
 */
import { spawn } from 'node:child_process';
import { openSync, writeSync, closeSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, startBenchDaemon, type BenchDaemon } from './bench-daemon.js';
import { cpuMs, rssBytes } from './procfs.js';
import { mib, ratio, target, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { median, round } from './stats.js';
import { nowMs } from './timing.js';

interface Transfer {
  bytes: number;
  /** First byte → last byte. */
  streamMs: number;
  /** Spawn → end of output. */
  wallMs: number;
}

function makeFile(path: string, bytes: number): void {
  // Not all zeros or one repeated byte: nothing on the way may shortcut uniform data.
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7919 + (i >> 10)) & 0xff;
  const fd = openSync(path, 'w');
  try {
    for (let left = bytes; left > 0; left -= block.length) writeSync(fd, block, 0, Math.min(block.length, left));
  } finally {
    closeSync(fd);
  }
}

function transfer(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    let first = 0;
    let last = 0;
    let bytes = 0;
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'ignore'] });
    child.once('error', reject);
    child.stdout!.on('data', (b: Buffer) => {
      if (bytes === 0) first = nowMs();
      bytes += b.length;
      last = nowMs();
    });
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`));
      else resolve({ bytes, streamMs: last - first, wallMs: nowMs() - t0 });
    });
  });
}

/** Read lockd's stdout at a trickle for `seconds` while sampling the daemon's RSS, then drain at full speed. */
async function slowReader(d: BenchDaemon, file: string, seconds: number): Promise<{ baseline: number | null; peak: number | null; samples: number; readSlowly: number; total: number }> {
  const baseline = rssBytes(d.pid);
  const child = spawn(process.execPath, [CLI, 'run', '-q', '--', 'cat', file], { env: d.env, cwd: d.dir, stdio: ['ignore', 'pipe', 'ignore'] });
  const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const out = child.stdout!;
  out.pause();
  let readSlowly = 0;
  let peak = baseline ?? 0;
  let samples = 0;
  const t0 = nowMs();
  await new Promise<void>((resolve) => {
    let tick = 0;
    const timer = setInterval(() => {
      // One buffered chunk (≤ 64 KiB) every 10 ms: about 6 MB/s, far below what cat produces.
      const chunk = out.read() as Buffer | null;
      if (chunk) readSlowly += chunk.length;
      if (++tick % 10 === 0) {
        const rss = rssBytes(d.pid);
        if (rss !== null) {
          peak = Math.max(peak, rss);
          samples++;
        }
      }
      if (nowMs() - t0 >= seconds * 1000) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
  let total = readSlowly;
  out.on('data', (b: Buffer) => (total += b.length));
  out.resume();
  const code = await closed;
  if (code !== 0) throw new Error(`slow-reader lockd run exited with ${code}`);
  return { baseline, peak, samples, readSlowly, total };
}

/** Drop finished runs' output.log copies between rounds so the bench does not fill the disk. */
function dropRunLogs(d: BenchDaemon): void {
  const runs = join(d.stateDir, 'runs');
  try {
    for (const id of readdirSync(runs)) rmSync(join(runs, id, 'output.log'), { force: true });
  } catch {
    /* no runs yet */
  }
}

export async function streamingScenario(size: Sizes['streaming']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const d = await startBenchDaemon();
  try {
    const file = join(d.dir, 'payload.bin');
    makeFile(file, size.bytes);
    const direct: Transfer[] = [];
    const viaLockd: Transfer[] = [];
    const viaFramed: Transfer[] = [];
    const viaRelays: Transfer[] = [];
    const framedEnv = { ...d.env, LOCKD_STDIO: 'framed' };
    let fdsCpuMs = 0;
    let framedCpuMs = 0;
    const daemonCpu = () => cpuMs(d.pid) ?? 0;
    // The same bytes through two Node processes that only pass them on (no log, no framing): the floor of any path
    // that, like lockd's (daemon, then client), crosses two Node processes on the way.
    const relay = `${JSON.stringify(process.execPath)} -e 'process.stdin.pipe(process.stdout)'`;
    const relays = ['-c', `cat "$0" | ${relay} | ${relay}`, file];
    for (let i = 0; i < size.warmup + size.rounds; i++) {
      const a = await transfer('cat', [file], d.env, d.dir);
      const cpu0 = daemonCpu();
      const b = await transfer(process.execPath, [CLI, 'run', '-q', '--', 'cat', file], d.env, d.dir);
      const cpu1 = daemonCpu();
      const f = await transfer(process.execPath, [CLI, 'run', '-q', '--', 'cat', file], framedEnv, d.dir);
      const cpu2 = daemonCpu();
      const c = await transfer('sh', relays, d.env, d.dir);
      dropRunLogs(d);
      for (const t of [a, b, f, c]) if (t.bytes !== size.bytes) throw new Error(`short read: ${t.bytes} of ${size.bytes} bytes`);
      if (i >= size.warmup) {
        direct.push(a);
        viaLockd.push(b);
        viaFramed.push(f);
        viaRelays.push(c);
        fdsCpuMs += cpu1 - cpu0;
        framedCpuMs += cpu2 - cpu1;
      }
    }
    const rate = (t: Transfer) => t.bytes / 1048576 / (t.streamMs / 1000);
    const directRate = median(direct.map(rate));
    const lockdRate = median(viaLockd.map(rate));
    const framedRate = median(viaFramed.map(rate));
    const gib = (size.bytes * viaLockd.length) / 1073741824;
    const fdsCpuPerGib = fdsCpuMs / gib;
    const framedCpuPerGib = framedCpuMs / gib;
    const relaysRate = median(viaRelays.map(rate));
    const slow = await slowReader(d, file, size.slowSeconds);
    dropRunLogs(d);
    const growth = slow.baseline !== null && slow.peak !== null ? slow.peak - slow.baseline : null;
    const rel = lockdRate / directRate;
    return {
      name: 'output_streaming',
      title: `lockd run -- cat ${mib(size.bytes)} into a pipe vs cat alone; daemon memory under a slow reader`,
      size: { bytes: size.bytes, rounds: size.rounds, slow_reader_seconds: size.slowSeconds },
      metrics: {
        direct_mib_per_s: round(directRate, 1),
        lockd_mib_per_s: round(lockdRate, 1),
        lockd_over_direct_ratio: round(rel),
        framed_mib_per_s: round(framedRate, 1),
        framed_over_direct_ratio: round(framedRate / directRate),
        daemon_cpu_ms_per_gib_fds: round(fdsCpuPerGib),
        daemon_cpu_ms_per_gib_framed: round(framedCpuPerGib),
        two_node_relays_mib_per_s: round(relaysRate, 1),
        two_node_relays_over_direct_ratio: round(relaysRate / directRate),
        lockd_over_two_node_relays_ratio: round(lockdRate / relaysRate),
        direct_wall_ms: round(median(direct.map((t) => t.wallMs))),
        lockd_wall_ms: round(median(viaLockd.map((t) => t.wallMs))),
        slow_reader: {
          daemon_rss_before_bytes: slow.baseline,
          daemon_rss_peak_bytes: slow.peak,
          daemon_rss_growth_bytes: growth,
          rss_samples: slow.samples,
          bytes_read_slowly: slow.readSlowly,
          bytes_total: slow.total,
        },
      },
      rows: [
        { measurement: `cat → pipe (median of ${direct.length})`, value: `${directRate.toFixed(0)} MiB/s` },
        {
          measurement: 'lockd run -- cat → pipe (fds: relayed in the kernel)',
          value: `${lockdRate.toFixed(0)} MiB/s`,
          detail: `${ratio(rel)} of direct; daemon CPU ${fdsCpuPerGib.toFixed(0)} ms/GiB`,
        },
        {
          measurement: 'lockd run -- cat → pipe (framed, LOCKD_STDIO=framed)',
          value: `${framedRate.toFixed(0)} MiB/s`,
          detail: `${ratio(framedRate / directRate)} of direct; daemon CPU ${framedCpuPerGib.toFixed(0)} ms/GiB`,
        },
        {
          measurement: 'cat | node | node → pipe (two relays)',
          value: `${relaysRate.toFixed(0)} MiB/s`,
          detail: `${ratio(relaysRate / directRate)} of direct; lockd is ${ratio(lockdRate / relaysRate)} of it`,
        },
        {
          measurement: `daemon RSS, slow reader (${size.slowSeconds} s)`,
          value: mib(slow.peak),
          detail: `before ${mib(slow.baseline)}, growth ${mib(growth)} while ${mib(slow.readSlowly)} were read slowly`,
        },
      ],
      targets: [
        target('lockd / direct throughput', rel, '>=', 0.8, 'x'),
        target('framed / direct throughput', framedRate / directRate, '>=', 0.4, 'x'),
        target('daemon RSS growth under a slow reader', growth === null ? null : growth / 1048576, '<=', 64, 'MiB'),
      ],
      notes: [
        "throughput is first byte → last byte as seen by the reading process; the lockd side also writes every byte to the run's output.log",
        'daemon CPU is utime+stime of the whole daemon process (relay threads included) over the lockd transfers, per GiB moved',
      ],
    };
  } finally {
    await d.stop();
  }
}
