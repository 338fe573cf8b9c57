/** Where the client finds its daemon; shared by connecting (connection.ts) and auto-start (autostart.ts). */
export interface ConnectOptions {
  socketPath: string;
  stateDir: string;
  /** Start a daemon when none answers (default true; LOCKD_NO_AUTOSTART=1 turns it off). */
  autostart: boolean;
  /** Why auto-start is off, for the "no daemon" message (default: LOCKD_NO_AUTOSTART): it must name the real cause. */
  autostartOffReason?: string;
}

/** The reason of commands that only look (status, ping, kill, logs...): they never start a daemon, whatever the env. */
export const LOOK_ONLY_REASON = 'this command never starts one; `lockd daemon` or any `lockd run` does';

/** These options for a command that only looks: never auto-start, and say so if no daemon answers. */
export function lookOnly(opts: ConnectOptions): ConnectOptions {
  return { ...opts, autostart: false, autostartOffReason: LOOK_ONLY_REASON };
}
