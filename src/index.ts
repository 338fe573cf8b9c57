/** lockd's public Node API. See docs/api.md and examples/node/. */
export { connect, LockdClient, LockdError, EventStream, toLockRef } from './api/client.js';
export type { ClientOptions, LockSpec, LockOptions, RunOptions, RunHandle, Hold } from './api/client.js';
export type { LockRef, StatusSnapshot, LockStatus, LockdEvent, RunOutcome, GrantInfo, HolderInfo, DaemonInfo } from './protocol/messages.js';
export { PROTOCOL_VERSION, LOCKD_VERSION } from './protocol/version.js';
