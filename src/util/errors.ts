/**
 * Typed errors for lockd. Every error that crosses a module boundary carries a
 * stable string `code` so callers (CLI exit codes, protocol replies, tests)
 * branch on the code rather than on message text, which may change.
 */
export class LockdError extends Error {
  constructor(
    public readonly code: string,
    message: string,
    public readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'LockdError';
  }
}

/** True when `err` is a LockdError, optionally with the given code. */
export function isLockdError(err: unknown, code?: string): err is LockdError {
  return err instanceof LockdError && (code === undefined || err.code === code);
}

/** The errno code (`ENOENT`, `EACCES`, …) of a Node system error, or undefined. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string' ? (err as { code: string }).code : undefined;
}
