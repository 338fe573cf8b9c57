import net from 'node:net';
import { appendFileSync } from 'node:fs';
const out = process.env.SP_OUT; const role = process.env.SP_ROLE;
const ev = [];
const t = () => performance.now();
const emit = net.Socket.prototype.emit;
net.Socket.prototype.emit = function (e, a, ...r) {
  if (e === 'data' && Buffer.isBuffer(a)) ev.push([role + (this._handle?.constructor?.name === 'Pipe' && role === 'd' && !this._isSrv ? ':in' : ':sock'), +t().toFixed(2), a.length, this.writableLength ?? 0]);
  if (e === 'pause' || e === 'resume') ev.push([role + ':' + e, +t().toFixed(2), 0, 0]);
  return emit.call(this, e, a, ...r);
};
const pause = net.Socket.prototype.pause; net.Socket.prototype.pause = function () { ev.push([role + ':pause', +t().toFixed(2), this.writableLength ?? 0, 0]); return pause.call(this); };
const resume = net.Socket.prototype.resume; net.Socket.prototype.resume = function () { ev.push([role + ':resume', +t().toFixed(2), 0, 0]); return resume.call(this); };
const flush = () => { if (ev.length) appendFileSync(out, ev.splice(0).map((e) => e.join(' ')).join('\n') + '\n'); };
process.on('exit', flush);
setInterval(flush, 500).unref();
