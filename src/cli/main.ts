/**
 * The `lockd` command. Each subcommand lives in its own module and is imported only when used, so `lockd run`
 * never loads what `lockd status` or the daemon need.
 */
import { reportError } from './common.js';
import { EXIT } from './exit-codes.js';
import { LOCKD_VERSION } from '../protocol/version.js';

type Command = { load: () => Promise<(args: string[]) => Promise<number>>; help: () => Promise<string>; summary: string };

export const COMMANDS: Record<string, Command> = {
  run: { summary: 'run a command under locks', load: async () => (await import('./commands/run.js')).runCommand, help: async () => (await import('./commands/run.js')).RUN_HELP },
  daemon: { summary: 'run the daemon in the foreground', load: async () => (await import('./commands/daemon.js')).daemonCommand, help: async () => (await import('./commands/daemon.js')).DAEMON_HELP },
  ping: { summary: 'check that a daemon answers', load: async () => (await import('./commands/ping.js')).pingCommand, help: async () => (await import('./commands/ping.js')).PING_HELP },
  shutdown: { summary: 'stop the daemon', load: async () => (await import('./commands/shutdown.js')).shutdownCommand, help: async () => (await import('./commands/shutdown.js')).SHUTDOWN_HELP },
  service: { summary: 'install systemd/launchd files for the daemon', load: async () => (await import('./commands/service.js')).serviceCommand, help: async () => (await import('./commands/service.js')).SERVICE_HELP },
  completion: { summary: 'print a bash, zsh or fish completion script', load: async () => (await import('./commands/completion.js')).completionCommand, help: async () => (await import('./commands/completion.js')).COMPLETION_HELP },
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

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    if (name === 'help' && rest[0] && COMMANDS[rest[0]]) {
      process.stdout.write(await COMMANDS[rest[0]]!.help());
      return EXIT.OK;
    }
    process.stdout.write(usage());
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`lockd ${LOCKD_VERSION}\n`);
    return EXIT.OK;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`lockd: unknown command ${JSON.stringify(name)}; run 'lockd --help' for the list\n`);
    return EXIT.USAGE;
  }
  // --help before any `--` belongs to lockd; after it, to the user's command.
  const dd = rest.indexOf('--');
  const own = dd === -1 ? rest : rest.slice(0, dd);
  if (own.includes('--help') || (own.includes('-h') && name !== 'run')) {
    process.stdout.write(await cmd.help());
    return EXIT.OK;
  }
  try {
    const fn = await cmd.load();
    return await fn(rest);
  } catch (e) {
    return reportError(e);
  }
}
