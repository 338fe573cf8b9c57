/**
 * jobs/ owns a run's life as a process: prepare, launch through the one launcher seam (launcher.ts: native or
 * portable), watch, relay its bytes (job-io.ts), kill its whole tree (process-tree.ts, cgroup.ts), finish.
 * It must not import server/ (bar the connection and logger types) or services/ implementations: what it needs
 * of the daemon comes in as JobContext.
 */
export { RunJob, type JobContext } from './run-job.js';
export type { Launcher, LaunchSpec, LaunchedJob } from './launcher.js';
export { selectLauncher } from './select-launcher.js';
