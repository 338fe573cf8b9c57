/**
 * Scenario 6, idle cost: after a little work (a few runs, so lazy state exists), and once the daemon's deferred
 * work after them is done (the duration stats are saved 10 s after a run, record fsyncs within 10 s, and V8's memory
 * reducer runs a few seconds after activity), the daemon should do nothing at all: CPU time (utime + stime from
 * /proc/<pid>/stat) and the main thread's context switches over the idle window, plus its RSS.
 */
import { CLI, startBenchDaemon } from './bench-daemon.js';
import { contextSwitches, cpuMs, rssBytes, clockTicks } from './procfs.js';
import { mib, ms, target, type ScenarioResult } from './report.js';
import type { Sizes } from './sizes.js';
import { sleep, timeCommand } from './timing.js';

const MAX_EXTRA_SETTLE_MS = 30_000;

export async function idleScenario(size: Sizes['idle']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const d = await startBenchDaemon();
  try {
    for (let i = 0; i < 3; i++) {
      const r = await timeCommand(process.execPath, [CLI, 'run', '-q', '--lock', 'idle', '--', 'true'], { env: d.env, cwd: d.dir });
      if (r.code !== 0) throw new Error(`warm-up run failed: ${r.stderr}`);
    }
    // Let post-run work finish before the window opens (see the file comment): the fixed settle covers the daemon's
    // own deferred work; then wait (bounded) until the main thread has not woken for quietSeconds, which is when V8's
    // memory reducer has finished its round of GCs (not a lockd timer: the daemon idles at 0 with --no-memory-reducer).
    // A periodic timer of lockd's would keep it from settling, and be reported.
    await sleep(size.settleSeconds * 1000);
    const settleStart = Date.now();
    let lastSwitches = contextSwitches(d.pid);
    let quietSince = Date.now();
    const quietMs = size.quietSeconds * 1000;
    while (Date.now() - quietSince < quietMs && Date.now() - settleStart < MAX_EXTRA_SETTLE_MS) {
      await sleep(250); // sampling /proc does not wake the daemon
      const now = contextSwitches(d.pid);
      if (now !== lastSwitches) {
        lastSwitches = now;
        quietSince = Date.now();
      }
    }
    const settled = Date.now() - quietSince >= quietMs;
    const extraSettleS = Math.round((Date.now() - settleStart) / 100) / 10;
    const cpu0 = cpuMs(d.pid);
    const cs0 = contextSwitches(d.pid);
    await sleep(size.seconds * 1000); // the measured idle window itself
    const cpu1 = cpuMs(d.pid);
    const cs1 = contextSwitches(d.pid);
    const rss = rssBytes(d.pid);
    const cpu = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
    const wakeups = cs0 !== null && cs1 !== null ? cs1 - cs0 : null;
    return {
      name: 'idle_cost',
      title: `daemon CPU and RSS over ${size.seconds} s idle`,
      size: { seconds: size.seconds, settle_seconds: size.settleSeconds, quiet_seconds: size.quietSeconds },
      metrics: { settled_quietly: settled, extra_settle_seconds: extraSettleS, cpu_ms: cpu, clock_tick_ms: 1000 / clockTicks(), main_thread_context_switches: wakeups, rss_bytes: rss },
      rows: [
        { measurement: `CPU time over ${size.seconds} s idle`, value: ms(cpu, 0), detail: `resolution ${(1000 / clockTicks()).toFixed(0)} ms; main-thread wake-ups ${wakeups ?? 'n/a'}` },
        { measurement: 'daemon RSS, idle', value: mib(rss) },
      ],
      targets: [target('idle CPU time', cpu, '<=', 0, 'ms')],
      notes: [
        `window opened ${size.settleSeconds + extraSettleS} s after the last run${quietMs > 0 ? (settled ? ` (the last ${extraSettleS} s waiting for ${size.quietSeconds} s without a main-thread wake-up)` : `; the main thread never stayed quiet for ${size.quietSeconds} s within ${MAX_EXTRA_SETTLE_MS / 1000} s`) : ''}`,
        `CPU time has ${(1000 / clockTicks()).toFixed(0)} ms resolution, so 0 means less than one tick`,
      ],
    };
  } finally {
    await d.stop();
  }
}
