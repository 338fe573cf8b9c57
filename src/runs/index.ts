/** Run records: ids, run directories, manifest/result files, verdicts, logs, GC and listing. */
export * from './atomic-write.js';
export * from './build-result.js';
export * from './env-digest.js';
export * from './gc.js';
export * from './git-sha.js';
export * from './list.js';
export * from './log-writer.js';
export * from './manifest.js';
export * from './result.js';
export * from './run-dirs.js';
export * from './run-files.js';
export * from './run-id.js';
export * from './shell-quote.js';
export * from './verdict.js';
