/** What the kernel says about a process: resident memory and CPU time, read from /proc (Linux only). */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { readStatusField } from '../src/util/proc.js';

let clkTck: number | null = null;

/** Clock ticks per second for /proc/<pid>/stat times (almost always 100). */
export function clockTicks(): number {
  if (clkTck === null) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** A `Field:  N kB` line of /proc/<pid>/status in bytes, or null. */
function statusKb(pid: number, field: string): number | null {
  const words = readStatusField(pid, field);
  return words ? Number(words[0]) * 1024 : null;
}

/** Resident set size in bytes (VmRSS), or null when the process is gone or /proc is unavailable. */
export function rssBytes(pid: number): number | null {
  return statusKb(pid, 'VmRSS');
}

/** Peak resident set size in bytes (VmHWM), or null. */
export function peakRssBytes(pid: number): number | null {
  return statusKb(pid, 'VmHWM');
}

/** CPU time (user + system) the process has used, in ms (tick resolution, usually 10 ms), or null. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces and parentheses): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return (ticks * 1000) / clockTicks();
  } catch {
    return null;
  }
}

/** Voluntary + involuntary context switches: a process that never wakes up keeps these constant. */
export function contextSwitches(pid: number): number | null {
  const v = readStatusField(pid, 'voluntary_ctxt_switches');
  const nv = readStatusField(pid, 'nonvoluntary_ctxt_switches');
  return v && nv ? Number(v[0]) + Number(nv[0]) : null;
}

/** The open-files limit of a process (soft, hard); null when unknown. */
export function openFilesLimit(pid: number | 'self' = 'self'): { soft: number; hard: number } | null {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    if (!m) return null;
    const num = (s: string) => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: num(m[1]!), hard: num(m[2]!) };
  } catch {
    return null;
  }
}
