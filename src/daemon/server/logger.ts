/**
 * The daemon's structured log: one JSON object per line in <state-dir>/daemon.log, level from LOCKD_LOG_LEVEL.
 * Only facts about locks, runs and connections go here; never an environment or anything else that may hold
 * secrets (callers pass argv as a shell-quoted string at most).
 */
import winston from 'winston';
import { join } from 'node:path';

export type Logger = winston.Logger;

export function createLogger(stateDir: string, opts: { alsoStderr?: boolean } = {}): Logger {
  const transports: winston.transport[] = [new winston.transports.File({ filename: join(stateDir, 'daemon.log'), maxsize: 20 * 1024 * 1024, maxFiles: 3, tailable: true })];
  if (opts.alsoStderr) transports.push(new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] }));
  return winston.createLogger({
    level: process.env.LOCKD_LOG_LEVEL || 'info',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { pid: process.pid },
    transports,
  });
}
