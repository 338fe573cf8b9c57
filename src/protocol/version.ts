/** Wire protocol version: bumped on any incompatible change to frames or messages. */
export const PROTOCOL_VERSION = 1;
/** lockd's own version; test/version.test.ts checks it against package.json so the two never drift. */
export const LOCKD_VERSION = '0.1.0';
