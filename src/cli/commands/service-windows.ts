/**
 * `lockd service print|install|uninstall` on Windows: the per-user logon task of service/windows-task.ts.
 * install writes the task XML (UTF-16, as schtasks expects) into the state dir and runs `schtasks /Create /XML`;
 * uninstall runs `schtasks /Delete`; --dry-run and print show the XML and the command line and change nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { EXIT } from '../exit-codes.js';
import { LockdError } from '../../util/errors.js';
import { resolveStateDir } from '../../util/paths.js';
import { lockdScriptPath } from '../../service/package-files.js';
import { planWindowsTask, quoteWindowsArg, type WindowsTaskPlan } from '../../service/windows-task.js';

function line(argv: string[]): string {
  return argv.map(quoteWindowsArg).join(' ');
}

function schtasks(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', windowsHide: true });
  if (r.error) throw new LockdError('service_failed', `cannot run schtasks: ${r.error.message}`);
  if (r.status !== 0) throw new LockdError('service_failed', `${line(argv)} failed (exit ${r.status}): ${`${r.stderr}${r.stdout}`.trim()}`);
}

export async function windowsServiceCommand(which: 'print' | 'install' | 'uninstall', opts: { dryRun: boolean; system: boolean }): Promise<number> {
  if (opts.system) throw new LockdError('usage', 'lockd service --system is not on Windows: the daemon is per user there (a logon task); see docs/service.md');
  const plan: WindowsTaskPlan = planWindowsTask({ nodePath: process.execPath, scriptPath: lockdScriptPath(), stateDir: resolveStateDir(undefined) });
  const out = (s: string) => process.stdout.write(s);
  const steps = (title: string, lines: string[]) => out(`${title}\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
  const describe = `Task Scheduler task ${plan.taskName} (at logon of ${plan.user}) running ${plan.command} ${plan.arguments}`;
  if (which === 'print') {
    out(`# ${describe}\n# ==> ${plan.xmlPath} <==\n${plan.xml}`);
    return EXIT.OK;
  }
  if (which === 'install') {
    if (opts.dryRun) {
      out(`Dry run: would write ${plan.xmlPath} and register the ${describe}; nothing is changed.\n\n# ==> ${plan.xmlPath} <==\n${plan.xml}\n`);
      steps('Would run:', [line(plan.create)]);
      steps('Then you would run:', plan.afterInstall);
      return EXIT.OK;
    }
    mkdirSync(resolveStateDir(undefined), { recursive: true });
    // UTF-16LE with a BOM: the encoding the XML declares and the one schtasks reads without complaint.
    writeFileSync(plan.xmlPath, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(plan.xml.replace(/\n/g, '\r\n'), 'utf16le')]));
    schtasks(plan.create);
    out(`Installed the ${describe}:\n  wrote     ${plan.xmlPath}\n  ran       ${line(plan.create)}\n`);
    steps('Next:', plan.afterInstall);
    return EXIT.OK;
  }
  if (opts.dryRun) {
    steps(`Dry run: would remove the task ${plan.taskName} (nothing is removed):`, [line(plan.remove)]);
    steps('Then you would run:', plan.afterUninstall);
    return EXIT.OK;
  }
  schtasks(plan.remove);
  out(`Uninstalled the task ${plan.taskName}:\n  ran       ${line(plan.remove)}\n`);
  steps('Next:', plan.afterUninstall);
  return EXIT.OK;
}
