/**
 * The cluster watchdog: a tiny process beside the daemon that kills the process groups of runs holding cluster
 * locks when the daemon can no longer vouch for them. The daemon stops such jobs itself when its lease runs out;
 * this covers the cases where the daemon cannot: it died (SIGKILL, OOM: our stdin reaches EOF) or it hangs (the
 * deadline it last sent passes without a newer one). Either way the jobs die before the lease can expire on the
 * server, so another host never runs under the same lock while an orphan still does.
 *
 * Protocol, one command per line on stdin:
 *   deadline <epoch-ms>     kill every protected group at this time unless a later deadline arrives
 *   add <run-id> <pgid>     protect (watch) this process group
 *   del <run-id>            no longer protected (its locks were released)
 *   exit                    the daemon is stopping cleanly: exit without killing anything
 */
const groups = new Map<string, number>();
let deadline = Number.POSITIVE_INFINITY;
let timer: NodeJS.Timeout | null = null;
let graceMs = 1000;

function killAll(signal: NodeJS.Signals): void {
  for (const pgid of groups.values()) {
    try {
      process.kill(-pgid, signal);
    } catch {
      /* already gone */
    }
  }
}

function arm(): void {
  if (timer) clearTimeout(timer);
  timer = null;
  if (!Number.isFinite(deadline)) return;
  timer = setTimeout(
    () => {
      timer = null;
      if (Date.now() >= deadline) {
        killAll('SIGKILL');
        groups.clear();
      } else arm();
    },
    Math.max(0, deadline - Date.now()),
  );
}

function daemonGone(): void {
  if (groups.size === 0) process.exit(0);
  killAll('SIGTERM');
  // SIGKILL after a short grace, and never later than the deadline.
  const at = Math.min(Date.now() + graceMs, deadline);
  setTimeout(
    () => {
      killAll('SIGKILL');
      process.exit(0);
    },
    Math.max(0, at - Date.now()),
  );
}

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buf += chunk;
  let nl: number;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    const [cmd, a, b] = line.split(' ');
    if (cmd === 'deadline' && a) {
      deadline = Number(a);
      arm();
    } else if (cmd === 'grace' && a) {
      graceMs = Number(a);
    } else if (cmd === 'add' && a && b) {
      groups.set(a, Number(b));
    } else if (cmd === 'del' && a) {
      groups.delete(a);
    } else if (cmd === 'exit') {
      process.exit(0);
    }
  }
});
process.stdin.on('end', daemonGone);
process.stdin.on('error', daemonGone);
// Never die of a signal meant for the daemon's terminal.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
