/**
 * The handoff probe: a child that appends "S <pid> <ns>" (CLOCK_MONOTONIC, the clock of the daemon's phase marks;
 * the sh fallback's `date` is wall-clock) as its first act and "E <pid> <ns>" as its last, so the gap
 * between one child's E and the next child's S is the daemon's handoff (exit noticed → locks released → next child
 * granted, spawned and running). A tiny C program when a compiler is around (static if possible: no dynamic loader
 * in the measured gap), else `sh -c 'date'`, whose own start-up (sh + fork/exec of date) then inflates the gap.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SOURCE = `#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static void stamp(int fd, char what) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%c %d %lld\\n", what, (int)getpid(), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  if (write(fd, buf, (size_t)n) != n) _exit(3);
}
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return 2;
  stamp(fd, 'S');
  stamp(fd, 'E');
  _exit(0);
}
`;

export interface StampProbe {
  /** argv for a job that stamps into `file`. */
  argv(file: string): string[];
  /** What the probe is, for the report. */
  kind: 'c-static' | 'c-dynamic' | 'sh-date';
}

export function buildStampProbe(dir: string): StampProbe {
  const src = join(dir, 'stamp.c');
  const bin = join(dir, 'stamp');
  writeFileSync(src, SOURCE);
  for (const [kind, extra] of [
    ['c-static', ['-static']],
    ['c-dynamic', []],
  ] as const) {
    for (const cc of ['cc', 'gcc', 'clang']) {
      try {
        execFileSync(cc, ['-O2', ...extra, '-o', bin, src], { stdio: 'ignore', timeout: 60_000 });
        return { kind, argv: (file) => [bin, file] };
      } catch {
        /* next compiler / next variant */
      }
    }
  }
  return {
    kind: 'sh-date',
    argv: (file) => ['sh', '-c', 'echo "S $$ $(date +%s%N)" >> "$1"; echo "E $$ $(date +%s%N)" >> "$1"', 'stamp', file],
  };
}

export interface Stamp {
  kind: 'S' | 'E';
  pid: number;
  ns: bigint;
}

export function readStamps(file: string): Stamp[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [kind, pid, ns] = l.trim().split(/\s+/);
      return { kind: kind as 'S' | 'E', pid: Number(pid), ns: BigInt(ns!) };
    });
}

/**
 * Gaps (ms) between each child's end stamp and the next child's start stamp, in file order. Throws when the stamps
 * interleave (two children running at once would mean the lock was not exclusive).
 */
export function handoffGaps(stamps: Stamp[]): number[] {
  const gaps: number[] = [];
  let lastEnd: bigint | null = null;
  let running: number | null = null;
  for (const s of stamps) {
    if (s.kind === 'S') {
      if (running !== null) throw new Error(`children ${running} and ${s.pid} overlapped: the lock was not exclusive`);
      running = s.pid;
      if (lastEnd !== null) gaps.push(Number(s.ns - lastEnd) / 1e6);
    } else {
      if (running !== s.pid) throw new Error(`end stamp of ${s.pid} without its start`);
      running = null;
      lastEnd = s.ns;
    }
  }
  return gaps;
}
