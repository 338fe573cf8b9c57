/**
 * The verdict options a user gives to `lockd run` (--require-structured,
 * --require-marker, --require-all, --forbid-marker, --expect-timeout),
 * validated and compiled once, before the run is queued: a typo in a regex
 * must fail the command immediately, not after an hour-long emulator run.
 */
import { LockdError } from '../util/errors.js';

export interface VerdictOptions {
  /** Judge by the last TEST_RESULT_JSON and TEST_SUMMARY lines instead of the exit code. */
  requireStructured: boolean;
  /** Regexes; at least one must match some output line. */
  requireMarker: string[];
  /** Regexes; every one must match some output line. */
  requireAll: string[];
  /** Regexes; none may match any output line. */
  forbidMarker: string[];
  /** Being killed at the time limit counts as a pass. */
  expectTimeout: boolean;
}

export interface CompiledMarker {
  /** The source as the user wrote it (reported back in result.json). */
  pattern: string;
  regex: RegExp;
}

export interface CompiledVerdictOptions {
  requireStructured: boolean;
  requireMarker: CompiledMarker[];
  requireAll: CompiledMarker[];
  forbidMarker: CompiledMarker[];
  expectTimeout: boolean;
}

/** The parts of the options that decide the verdict; both the raw and the compiled form fit. */
export interface VerdictPolicy {
  requireStructured: boolean;
  expectTimeout: boolean;
  requireMarker: readonly unknown[];
  requireAll: readonly unknown[];
  forbidMarker: readonly unknown[];
}

export const NO_VERDICT_OPTIONS: CompiledVerdictOptions = Object.freeze({
  requireStructured: false,
  requireMarker: [],
  requireAll: [],
  forbidMarker: [],
  expectTimeout: false,
}) as CompiledVerdictOptions;

function compileList(flag: string, patterns: unknown): CompiledMarker[] {
  if (patterns === undefined) return [];
  if (!Array.isArray(patterns)) {
    throw new LockdError('usage', `${flag} expects a list of regular expressions`, { flag });
  }
  return patterns.map((pattern: unknown) => {
    if (typeof pattern !== 'string' || pattern === '') {
      // An empty regex matches every line, which is never what was meant.
      throw new LockdError('usage', `${flag} needs a non-empty regular expression`, { flag, pattern });
    }
    try {
      // No flags: no `g`/`y` (stateful lastIndex would make test() skip lines);
      // patterns are matched against one line at a time.
      return { pattern, regex: new RegExp(pattern) };
    } catch (err) {
      throw new LockdError('usage', `${flag} ${JSON.stringify(pattern)} is not a valid regular expression: ${(err as Error).message}`, {
        flag,
        pattern,
      });
    }
  });
}

function compileFlag(flag: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new LockdError('usage', `${flag} must be true or false`, { flag });
  return value;
}

/** Validate and compile verdict options; throws LockdError `usage` for invalid regexes or shapes. */
export function compileVerdictOptions(options: Partial<VerdictOptions> = {}): CompiledVerdictOptions {
  return {
    requireStructured: compileFlag('--require-structured', options.requireStructured),
    requireMarker: compileList('--require-marker', options.requireMarker),
    requireAll: compileList('--require-all', options.requireAll),
    forbidMarker: compileList('--forbid-marker', options.forbidMarker),
    expectTimeout: compileFlag('--expect-timeout', options.expectTimeout),
  };
}

/** True when any verdict option is in force, which switches lockd's exit code to 0 pass / 1 fail / 2 error. */
export function hasVerdictOptions(policy: VerdictPolicy): boolean {
  return policy.requireStructured || policy.expectTimeout || policy.requireMarker.length > 0 || policy.requireAll.length > 0 || policy.forbidMarker.length > 0;
}
