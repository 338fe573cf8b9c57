/** Where the client finds its daemon; shared by connecting (connection.ts) and auto-start (autostart.ts). */
export interface ConnectOptions {
  socketPath: string;
  stateDir: string;
  /** Start a daemon when none answers (default true; LOCKD_NO_AUTOSTART=1 turns it off). */
  autostart: boolean;
}
