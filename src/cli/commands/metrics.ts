/**
 * `lockd metrics`: the daemon's metrics in the Prometheus text format (what `/metrics` on `lockd web` serves), for a
 * node_exporter textfile collector, a cron job or a look by hand. Never starts a daemon.
 */
import { COMMON_OPTIONS, parse } from '../args.js';
import { apiClient } from '../common.js';
import { LockdError, isLockdError } from '../../util/errors.js';
import { EXIT } from '../exit-codes.js';

const OPTIONS = { ...COMMON_OPTIONS, json: { type: 'boolean' }, holders: { type: 'boolean' } } as const;

export const METRICS_HELP = `Usage: lockd metrics [--json] [--holders]

Print the daemon's metrics in the Prometheus text format (version 0.0.4; promtool check metrics accepts it):
per lock (labels lock, scope, path) the histograms lockd_lock_wait_seconds, lockd_lock_hold_seconds and
lockd_handoff_seconds, the gauges lockd_queue_depth and lockd_holders; lockd_runs_total{verdict}; live runs
and holds; the daemon process (process_*). Counted since the daemon started. Never starts a daemon: with none
running it exits 125. docs/operations.md lists every series, with example alert rules.
  --json      the snapshot the text is rendered from, as JSON
  --holders   also name who holds each lock (lockd_lock_holder{holder,user,...}); off by default

Examples:
  lockd metrics | grep lockd_queue_depth
  lockd metrics > /var/lib/node_exporter/textfile/lockd.prom.$$ && mv /var/lib/node_exporter/textfile/lockd.prom.$$ /var/lib/node_exporter/textfile/lockd.prom
`;

export async function metricsCommand(args: string[]): Promise<number> {
  const { values } = parse(args, OPTIONS);
  const client = apiClient(values, undefined, { autostart: false });
  let snapshot;
  try {
    snapshot = await client.metrics({ holders: values.holders ?? false });
  } catch (e) {
    if (isLockdError(e, 'daemon_not_running')) throw new LockdError('daemon_not_running', `no lockd daemon is running on ${client.connectOptions.socketPath}; no metrics to print`);
    throw e;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(snapshot)}\n`);
    return EXIT.OK;
  }
  const { renderPrometheus } = await import('../../metrics/prometheus.js');
  process.stdout.write(renderPrometheus(snapshot));
  return EXIT.OK;
}
