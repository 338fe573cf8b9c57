/**
 * server/ owns the socket: claiming it (listen.ts), framing each connection (connection.ts), and the daemon's
 * state with its one dispatch per request (core.ts), which builds the capabilities the other parts are given.
 * Nothing else in src/daemon/ may import it, except main.ts (start-up) and types of connection.ts and logger.ts.
 */
export { DaemonCore } from './core.js';
export { Connection } from './connection.js';
export { DaemonLockGate } from './lock-gate.js';
