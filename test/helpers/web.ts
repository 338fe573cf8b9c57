/** Helpers for the lockd web tests: a real `lockd web` process on a free loopback port, and the real Chromium. */
import type { ExecutionContext } from 'ava';
import type { Browser, BrowserContext, BrowserContextOptions } from 'playwright-core';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockdSpawn, type CliProcess, type Daemon } from './lockd.js';

export interface Web {
  url: string;
  token: string;
  tokenFile: string;
  proc: CliProcess;
}

/** `lockd web --listen 127.0.0.1:0` for the daemon `d`, resolved once it printed where it serves; stopped in teardown. */
export async function startWeb(t: ExecutionContext, d: Daemon, args: string[] = [], tokenFile = join(d.dir, 'web-token')): Promise<Web> {
  const proc = lockdSpawn(t, d, ['web', '--listen', '127.0.0.1:0', '--token-file', tokenFile, ...args]);
  await proc.waitForStdout(/serving (http:\/\/\S+\/)/);
  const url = /serving (http:\/\/\S+\/)/.exec(proc.stdout())![1]!;
  return { url, token: readFileSync(tokenFile, 'utf8').trim(), tokenFile, proc };
}

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Debian's chromium, headless, through playwright-core (no browser download): one browser per test file, started
 * by the first test that asks and closed after the file's last test; each test gets a fresh context (its own
 * cookies, storage and pages), closed in its teardown. A missing chromium fails the test with the way to get it:
 * never a silent skip (.ci/run installs it).
 */
let shared: Promise<Browser> | null = null;

async function sharedBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it); the browser tests never skip`);
  const { chromium } = await import('playwright-core');
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  shared ??= chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'], timeout: 60_000 });
  return await shared;
}

export async function closeChromium(): Promise<void> {
  const b = shared;
  shared = null;
  if (b) await (await b.catch(() => null))?.close();
}

export async function browserContext(t: ExecutionContext, opts: BrowserContextOptions = {}): Promise<BrowserContext> {
  const context = await (await sharedBrowser()).newContext(opts);
  t.teardown(() => context.close());
  return context;
}
