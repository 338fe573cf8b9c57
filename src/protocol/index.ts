export * from './messages.js';
export * from './framing.js';
export { PROTOCOL_VERSION, LOCKD_VERSION } from './version.js';
