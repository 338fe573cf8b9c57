/**
 * Every `lockd` subcommand: its one-line summary and how to load it and its help. Each module is imported only
 * when used, so `lockd run` never loads what `lockd status` or the daemon need. main.ts dispatches on this table
 * and `lockd completion` reads it; it imports neither of them.
 */
import type { CommandTable } from './command-types.js';

export const COMMANDS: CommandTable = {
  run: { summary: 'run a command under locks', load: async () => (await import('./commands/run.js')).runCommand, help: async () => (await import('./commands/run.js')).RUN_HELP },
  daemon: { summary: 'run the daemon in the foreground', load: async () => (await import('./commands/daemon.js')).daemonCommand, help: async () => (await import('./commands/daemon.js')).DAEMON_HELP },
  ping: { summary: 'check that a daemon answers', load: async () => (await import('./commands/ping.js')).pingCommand, help: async () => (await import('./commands/ping.js')).PING_HELP },
  shutdown: { summary: 'stop the daemon', load: async () => (await import('./commands/shutdown.js')).shutdownCommand, help: async () => (await import('./commands/shutdown.js')).SHUTDOWN_HELP },
  service: {
    summary: 'install systemd/launchd files for the daemon',
    load: async () => (await import('./commands/service.js')).serviceCommand,
    help: async () => (await import('./commands/service.js')).SERVICE_HELP,
  },
  completion: {
    summary: 'print a bash, zsh or fish completion script',
    load: async () => (await import('./commands/completion.js')).completionCommand,
    help: async () => (await import('./commands/completion.js')).COMPLETION_HELP,
  },
  logs: {
    summary: "print a run's output log; -f follows a live run",
    load: async () => (await import('./commands/logs.js')).logsCommand,
    help: async () => (await import('./commands/logs.js')).LOGS_HELP,
  },
  result: { summary: "print a run's result.json", load: async () => (await import('./commands/result.js')).resultCommand, help: async () => (await import('./commands/result.js')).RESULT_HELP },
  runs: { summary: 'list recorded runs, newest first', load: async () => (await import('./commands/runs.js')).runsCommand, help: async () => (await import('./commands/runs.js')).RUNS_HELP },
  gc: {
    summary: 'remove old run directories (never live or pinned ones)',
    load: async () => (await import('./commands/gc.js')).gcCommand,
    help: async () => (await import('./commands/gc.js')).GC_HELP,
  },
  pin: { summary: 'keep a run out of garbage collection', load: async () => (await import('./commands/pin.js')).pinCommand, help: async () => (await import('./commands/pin.js')).PIN_HELP },
  unpin: { summary: 'let garbage collection remove a run again', load: async () => (await import('./commands/pin.js')).unpinCommand, help: async () => (await import('./commands/pin.js')).UNPIN_HELP },
  status: {
    summary: 'show every lock held or waited on, runs and holds',
    load: async () => (await import('./commands/status.js')).statusCommand,
    help: async () => (await import('./commands/status.js')).STATUS_HELP,
  },
  inspect: {
    summary: 'is one lock held? (exit 0 held, 1 free)',
    load: async () => (await import('./commands/inspect.js')).inspectCommand,
    help: async () => (await import('./commands/inspect.js')).INSPECT_HELP,
  },
  pool: {
    summary: 'list, show, add, remove, disable or enable pools and their members',
    load: async () => (await import('./commands/pool.js')).poolCommand,
    help: async () => (await import('./commands/pool.js')).POOL_HELP,
  },
  metrics: {
    summary: 'print lock wait/hold/handoff metrics in the Prometheus text format',
    load: async () => (await import('./commands/metrics.js')).metricsCommand,
    help: async () => (await import('./commands/metrics.js')).METRICS_HELP,
  },
  web: {
    summary: 'serve a live page of holders, queues and runs, and /metrics',
    load: async () => (await import('./commands/web.js')).webCommand,
    help: async () => (await import('./commands/web.js')).WEB_HELP,
  },
  events: {
    summary: 'follow lock, run and hold events live',
    load: async () => (await import('./commands/events.js')).eventsCommand,
    help: async () => (await import('./commands/events.js')).EVENTS_HELP,
  },
  acquire: {
    summary: 'hold locks without running anything (prints LOCKD_HOLD_ID)',
    load: async () => (await import('./commands/acquire.js')).acquireCommand,
    help: async () => (await import('./commands/acquire.js')).ACQUIRE_HELP,
  },
  heartbeat: {
    summary: "renew a hold's TTL",
    load: async () => (await import('./commands/heartbeat.js')).heartbeatCommand,
    help: async () => (await import('./commands/heartbeat.js')).HEARTBEAT_HELP,
  },
  release: {
    summary: "release your holds (others' only with --force)",
    load: async () => (await import('./commands/release.js')).releaseCommand,
    help: async () => (await import('./commands/release.js')).RELEASE_HELP,
  },
  wait: {
    summary: 'wait for runs to end; exit with their exit code',
    load: async () => (await import('./commands/wait.js')).waitCommand,
    help: async () => (await import('./commands/wait.js')).WAIT_HELP,
  },
  kill: { summary: "stop a run's whole process tree", load: async () => (await import('./commands/kill.js')).killCommand, help: async () => (await import('./commands/kill.js')).KILL_HELP },
  config: {
    summary: "print every setting's effective value and source",
    load: async () => (await import('./commands/config.js')).configCommand,
    help: async () => (await import('./commands/config.js')).CONFIG_HELP,
  },
  doctor: {
    summary: 'check permissions, daemon version, lingering, stale locks, disk',
    load: async () => (await import('./commands/doctor.js')).doctorCommand,
    help: async () => (await import('./commands/doctor.js')).DOCTOR_HELP,
  },
  'clean-stale': {
    summary: 'remove lock metadata left by owners that are gone',
    load: async () => (await import('./commands/clean-stale.js')).cleanStaleCommand,
    help: async () => (await import('./commands/clean-stale.js')).CLEAN_STALE_HELP,
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`);
  return `Usage: lockd <command> [options]

lockd: a per-host daemon that owns every lock and runs the commands that need them.

Commands:
${lines.join('\n')}

Run 'lockd <command> --help' for a command's options and examples.
Example: lockd run --root build --arch riscv64 --lock qemu -- ./scripts/run-qemu-session.sh
`;
}
