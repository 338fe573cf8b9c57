/** The host pool most pool tests use (three boards, two arm64), and a daemon started with it in its lockd.json. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, tempDir } from './lockd.js';

export const BOARDS = {
  pools: {
    boards: {
      members: {
        'rpi4-a': { arch: 'arm64', serial: '/dev/ttyUSB0' },
        'rpi4-b': { arch: 'arm64', serial: '/dev/ttyUSB1' },
        nuc: { arch: 'x86_64' },
      },
    },
  },
};

/** A real daemon whose state dir's lockd.json is `config`. */
export async function poolDaemon(t: Parameters<typeof startDaemon>[0], config: unknown = BOARDS) {
  const dir = tempDir();
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'lockd.json'), JSON.stringify(config));
  return startDaemon(t, { dir });
}
