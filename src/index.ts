/** lockd's public Node API. See docs/api.md and examples/node/. */
export { connect, LockdClient, LockdError, EventStream, toLockRef } from './api/client.js';
export type { ClientOptions, LockSpec, LockOptions, RunOptions, RunHandle, RunIo, RunMessage, Hold, ReleaseRequest } from './api/client.js';
export type { MetricsSnapshot, LockMetrics, HistogramSnapshot } from './protocol/messages.js';
export { renderPrometheus, PROMETHEUS_CONTENT_TYPE } from './metrics/prometheus.js';
export type { LockRef, StatusSnapshot, LockStatus, LockdEvent, RunOutcome, GrantInfo, HolderInfo, DaemonInfo, RunRequest, AcquireRequest, ForwardSignal } from './protocol/messages.js';
export { PROTOCOL_VERSION, LOCKD_VERSION } from './protocol/version.js';
