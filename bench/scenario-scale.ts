/**
 * Scenario 5, scale: N waiters queued on one lock and M distinct locks held, all as explicit holds over the Node API
 * (one connection per waiter, no process). Measures the daemon's RSS, `status` latency (CLI `lockd status --json`
 * when that command exists, and the raw request), and the time to drain the queue when each waiter releases as soon
 * as it is granted.
 */
import { CLI, startBenchDaemon } from './bench-daemon.js';
import { acquireHold, inBatches, localLock, releaseHold, type HoldWaiter } from './lockd-api.js';
import { request } from '../src/client/connection.js';
import { COMMANDS } from '../src/cli/registry.js';
import { peakRssBytes, rssBytes } from './procfs.js';
import { mib, ms, target, type Row, type ScenarioResult, type Target } from './report.js';
import type { Sizes } from './sizes.js';
import { median, round, roundSummary, summarize } from './stats.js';
import { nowMs, timeCommand } from './timing.js';

export async function scaleScenario(size: Sizes['scale']): Promise<Omit<ScenarioResult, 'seconds'>> {
  const d = await startBenchDaemon();
  const notes: string[] = [];
  try {
    const rssIdle = rssBytes(d.pid);
    // M distinct locks, each held.
    const held = await inBatches(
      Array.from({ length: size.locks }, (_, i) => i),
      32,
      async (i) => (await acquireHold(d, localLock(`held-${i}`, d.dir), d.dir).acquired).holdId,
    );
    // One contended lock: a holder, then N waiters behind it (each keeps its connection open while it waits).
    const head = await acquireHold(d, localLock('contended', d.dir), d.dir).acquired;
    const t0 = nowMs();
    const waiters: HoldWaiter[] = await inBatches(
      Array.from({ length: size.waiters }, (_, i) => i),
      64,
      async () => {
        const w = acquireHold(d, localLock('contended', d.dir), d.dir);
        await w.queued;
        return w;
      },
    );
    const queueMs = nowMs() - t0;
    const rssLoaded = rssBytes(d.pid);

    // status: the raw request (one connection, snapshot, JSON) and, when the command exists, the CLI.
    const apiTimes: number[] = [];
    let snapshotBytes = 0;
    let waitersSeen = 0;
    for (let i = 0; i < size.statusSamples + 1; i++) {
      const s0 = nowMs();
      const r = await request(d.connect, { type: 'status', root: null }, ['status']);
      if (i > 0) apiTimes.push(nowMs() - s0);
      snapshotBytes = Buffer.byteLength(JSON.stringify(r.snapshot));
      waitersSeen = r.snapshot.locks.find((l) => l.name === 'contended')?.waiters.length ?? 0;
    }
    if (waitersSeen !== size.waiters) notes.push(`status listed ${waitersSeen} waiters on the contended lock, expected ${size.waiters}`);
    const cliTimes: number[] = [];
    if ('status' in COMMANDS) {
      for (let i = 0; i < size.statusSamples + 1; i++) {
        const r = await timeCommand(process.execPath, [CLI, 'status', '--json'], { env: d.env, cwd: d.dir });
        if (r.code !== 0) throw new Error(`lockd status --json exited with ${r.code}: ${r.stderr}`);
        if (i > 0) cliTimes.push(r.ms);
      }
    } else {
      notes.push('this build has no `lockd status` command: only the raw status request is timed');
    }

    // Drain: release the head; every waiter releases the moment it is granted, in queue order.
    const d0 = nowMs();
    await releaseHold(d, head.holdId, d.dir);
    for (const w of waiters) {
      const { holdId } = await w.acquired;
      await releaseHold(d, holdId, d.dir);
    }
    const drainMs = nowMs() - d0;
    const rssDrained = rssBytes(d.pid);
    const rssPeak = peakRssBytes(d.pid);
    for (const id of held) await releaseHold(d, id, d.dir);

    const api = roundSummary(summarize(apiTimes));
    const cli = cliTimes.length ? roundSummary(summarize(cliTimes)) : null;
    const rows: Row[] = [
      { measurement: `daemon RSS, ${size.waiters} waiters + ${size.locks} locks held`, value: mib(rssLoaded), detail: `idle before: ${mib(rssIdle)}; peak ${mib(rssPeak)}` },
      { measurement: 'status request (Node API, median)', value: ms(api.median), detail: `snapshot ${(snapshotBytes / 1024).toFixed(0)} KiB; p90 ${ms(api.p90)}` },
    ];
    if (cli) rows.push({ measurement: 'lockd status --json (CLI, median)', value: ms(cli.median), detail: `p90 ${ms(cli.p90)}` });
    rows.push(
      { measurement: `queueing ${size.waiters} waiters`, value: ms(queueMs, 0), detail: `${((size.waiters * 1000) / queueMs).toFixed(0)} waiters/s` },
      {
        measurement: `drain ${size.waiters} waiters (grant → release chain)`,
        value: ms(drainMs, 0),
        detail: `${(drainMs / size.waiters).toFixed(2)} ms per handoff incl. a release round trip; RSS after ${mib(rssDrained)}`,
      },
    );
    const targets: Target[] = [target('daemon RSS under load', rssLoaded === null ? null : rssLoaded / 1048576, '<=', 200, 'MiB')];
    targets.push(cli ? target('lockd status --json latency (median)', cli.median, '<=', 200, 'ms') : target('status request latency (median)', api.median, '<=', 200, 'ms'));
    return {
      name: 'scale',
      title: `${size.waiters} waiters on one lock + ${size.locks} distinct locks held`,
      size: { waiters: size.waiters, locks_held: size.locks, status_samples: size.statusSamples },
      metrics: {
        rss_idle_bytes: rssIdle,
        rss_loaded_bytes: rssLoaded,
        rss_peak_bytes: rssPeak,
        rss_after_drain_bytes: rssDrained,
        status_api_ms: api,
        status_cli_ms: cli,
        status_snapshot_bytes: snapshotBytes,
        queue_ms: round(queueMs),
        drain_ms: round(drainMs),
        drain_per_waiter_ms: round(drainMs / size.waiters),
        status_api_median_ms: round(median(apiTimes)),
      },
      rows,
      targets,
      notes,
    };
  } finally {
    await d.stop();
  }
}
