/**
 * Timing instrument for the wrapper-overhead breakdown, loaded with `node --import` into a `lockd run` client or into
 * a bench daemon. It patches nothing lockd owns: it wraps net.Socket and ChildProcess methods to record when frames
 * go out and come in, when a child is spawned and when it exits, in absolute ms (performance.timeOrigin + now), and
 * appends one JSON line per client process (at exit) or per finished run (daemon) to $LOCKD_BENCH_TRACE.
 * Only the bench loads it; lockd itself carries no tracing code.
 */
import net from 'node:net';
import { ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';

type Mark = [string, number];

const out = process.env.LOCKD_BENCH_TRACE;
const role = process.env.LOCKD_BENCH_TRACE_ROLE === 'daemon' ? 'daemon' : 'client';
const abs = (): number => performance.timeOrigin + performance.now();
let marks: Mark[] = [
  ['process_start', performance.timeOrigin],
  ['preload', abs()],
];
let clientPid: number | null = null;
const mark = (what: string): void => {
  marks.push([what, abs()]);
};
const flush = (): void => {
  if (!out || marks.length === 0) return;
  appendFileSync(out, `${JSON.stringify({ role, pid: process.pid, client_pid: clientPid, marks })}\n`);
  marks = [];
};

/** The `type` of every JSON frame in a chunk (frames: u32 length, u8 kind, payload), tracking partial frames. */
class FrameTypes {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Array<{ type: string; pid?: number }> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const found: Array<{ type: string; pid?: number }> = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 5 + len) break;
      if (this.buf[4] === 0) {
        const head = this.buf.subarray(5, 5 + Math.min(len, 200)).toString('utf8');
        const type = /"type":"([a-z_]+)"/.exec(head)?.[1] ?? '?';
        const pid = /"pid":(\d+)/.exec(head)?.[1];
        found.push(pid ? { type, pid: Number(pid) } : { type });
      }
      this.buf = this.buf.subarray(5 + len);
    }
    return found;
  }
}

const inbound = new WeakMap<net.Socket, FrameTypes>();
const outbound = new WeakMap<net.Socket, FrameTypes>();

const origConnect = net.Socket.prototype.connect as (...a: unknown[]) => net.Socket;
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
  mark('connect_call');
  this.once('connect', () => mark('connected'));
  return origConnect.apply(this, args);
} as typeof net.Socket.prototype.connect;

const origWrite = net.Socket.prototype.write as (...a: unknown[]) => boolean;
net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
  const data = args[0];
  if (Buffer.isBuffer(data)) {
    let ft = outbound.get(this);
    if (!ft) outbound.set(this, (ft = new FrameTypes()));
    const frames = ft.push(data);
    const r = origWrite.apply(this, args);
    for (const f of frames) {
      mark(`send:${f.type}`);
      if (role === 'daemon' && f.type === 'finished') flush();
    }
    return r;
  }
  return origWrite.apply(this, args);
} as typeof net.Socket.prototype.write;

const origEmit = net.Socket.prototype.emit as (...a: unknown[]) => boolean;
net.Socket.prototype.emit = function (this: net.Socket, event: string | symbol, ...args: unknown[]) {
  if (event === 'data' && Buffer.isBuffer(args[0])) {
    let ft = inbound.get(this);
    if (!ft) inbound.set(this, (ft = new FrameTypes()));
    for (const f of ft.push(args[0])) {
      if (role === 'daemon' && f.type === 'hello') {
        // A new request: start a fresh record keyed by the client's pid.
        marks = [];
        clientPid = f.pid ?? null;
      }
      mark(`recv:${f.type}`);
    }
  }
  return origEmit.call(this, event, ...args);
} as typeof net.Socket.prototype.emit;

// ChildProcess#spawn is public in Node but missing from @types/node.
const proto = ChildProcess.prototype as unknown as { spawn: (...a: unknown[]) => unknown };
const origSpawn = proto.spawn;
proto.spawn = function (this: ChildProcess, ...args: unknown[]) {
  mark('spawn_call');
  const r = origSpawn.apply(this, args);
  mark('spawn_return');
  this.once('exit', () => mark('child_exit'));
  return r;
};

if (role === 'client') {
  process.once('exit', () => {
    mark('exit');
    flush();
  });
}
