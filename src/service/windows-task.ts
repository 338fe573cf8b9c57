/**
 * `lockd service` on Windows: a Task Scheduler task that starts the user's daemon at logon (docs/service.md says why
 * a task and not a Windows service). Pure: the task's XML and the schtasks command lines; running them is
 * cli/commands/service-windows.ts.
 *
 * The task is registered from XML (`schtasks /Create /XML`), not from /SC ONLOGON flags, because only XML can set
 * what a daemon needs: no execution time limit (a flag-made task is stopped after 72 hours), restart on failure,
 * one instance, no battery conditions. Wine's schtasks also accepts only the XML form, so the suite can run it.
 */
import { pipeUserPart } from '../util/paths.js';

export interface WindowsTaskPlan {
  /** Task name, per user: lockd-<user>. */
  taskName: string;
  /** The user the logon trigger and principal name (DOMAIN\user when the domain is known). */
  user: string;
  /** The program and arguments the task runs. */
  command: string;
  arguments: string;
  xml: string;
  /** Where install writes the XML before handing it to schtasks. */
  xmlPath: string;
  /** argv of schtasks for install and uninstall. */
  create: string[];
  remove: string[];
  afterInstall: string[];
  afterUninstall: string[];
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A Windows command-line argument, quoted when it must be (spaces, tabs, quotes), by the MSVCRT rules. */
export function quoteWindowsArg(arg: string): string {
  if (arg !== '' && !/[\s"]/.test(arg)) return arg;
  return `"${arg.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\*)$/, '$1$1')}"`;
}

export interface WindowsTaskOptions {
  nodePath: string;
  scriptPath: string;
  stateDir: string;
  env?: NodeJS.ProcessEnv;
}

export function planWindowsTask(opts: WindowsTaskOptions): WindowsTaskPlan {
  const env = opts.env ?? process.env;
  const name = env.USERNAME || env.USER || 'user';
  const user = env.USERDOMAIN ? `${env.USERDOMAIN}\\${name}` : name;
  const taskName = `lockd-${pipeUserPart(env)}`;
  const args = [opts.scriptPath, 'daemon'].map(quoteWindowsArg).join(' ');
  const xmlPath = `${opts.stateDir}\\${taskName}.task.xml`;
  const xml = `<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>lockd: the per-user lock daemon (written by lockd service install)</Description>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>${xmlEscape(user)}</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>${xmlEscape(user)}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>3</Count>
    </RestartOnFailure>
    <StartWhenAvailable>true</StartWhenAvailable>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>${xmlEscape(opts.nodePath)}</Command>
      <Arguments>${xmlEscape(args)}</Arguments>
    </Exec>
  </Actions>
</Task>
`;
  return {
    taskName,
    user,
    command: opts.nodePath,
    arguments: args,
    xml,
    xmlPath,
    create: ['schtasks', '/Create', '/F', '/TN', taskName, '/XML', xmlPath],
    remove: ['schtasks', '/Delete', '/F', '/TN', taskName],
    afterInstall: [
      'lockd shutdown   # only if a daemon was auto-started before; the task starts its own',
      `schtasks /Run /TN ${taskName}   # start it now rather than at the next logon`,
      'lockd ping',
    ],
    afterUninstall: ['lockd shutdown   # the running daemon stays until stopped; auto-start still works without the task'],
  };
}
