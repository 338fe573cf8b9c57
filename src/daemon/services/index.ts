/**
 * services/ owns what the daemon offers on top of locks and jobs: explicit holds, status and inspect, the event
 * bus and the metrics counted from it, who is asking (callers, identity, system mode), cleaning stale lock metadata.
 * It must not import server/ (bar the connection and logger types): each service is given the capabilities it
 * uses (ports.ts) at construction.
 */
export { HoldManager, type HoldContext } from './holds.js';
export { buildStatus, buildInspect, type StatusSource } from './status.js';
export { EventBus } from './events.js';
export { MetricsCollector, type MetricsSource } from './metrics.js';
export { DaemonCallers } from './callers.js';
export { SystemMode } from './system-mode.js';
