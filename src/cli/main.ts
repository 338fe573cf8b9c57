/** The `lockd` command: find the subcommand in the registry (registry.ts), print help or run it. */
import { reportError } from './common.js';
import { EXIT } from './exit-codes.js';
import { LOCKD_VERSION } from '../protocol/version.js';
import { COMMANDS, usage } from './registry.js';

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
    return await fn(rest, { commands: COMMANDS });
  } catch (e) {
    return reportError(e);
  }
}
