/**
 * Frames are length-prefixed, never delimiter-scanned, so binary child output passes through untouched:
 *
 *   [u32 big-endian payload length][u8 kind][payload bytes]
 *
 * kind 0 is a JSON control message (UTF-8); kinds 1-3 carry raw bytes of the child's stdout, stderr, or the
 * client's stdin. A length above the limit is a protocol error: we refuse it before buffering anything.
 */
import { LockdError } from '../util/errors.js';

export const FrameKind = { Json: 0, Stdout: 1, Stderr: 2, Stdin: 3 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const HEADER_BYTES = 5;
/** Largest control message we accept (a status snapshot of 10,000 waiters fits comfortably). */
export const MAX_JSON_FRAME = 64 * 1024 * 1024;
/** Largest data frame; senders split larger chunks. */
export const MAX_DATA_FRAME = 1024 * 1024;

export interface Frame {
  kind: FrameKind;
  payload: Buffer;
}

export function encodeFrame(kind: FrameKind, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt8(kind, 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

export function encodeJson(msg: unknown): Buffer {
  return encodeFrame(FrameKind.Json, Buffer.from(JSON.stringify(msg), 'utf8'));
}

/** Header only, so data frames can be written as two chunks without copying the payload. */
export function dataHeader(kind: FrameKind, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32BE(length, 0);
  h.writeUInt8(kind, 4);
  return h;
}

export interface FrameDecoderOptions {
  /**
   * Deliver data frames (stdout/stderr/stdin) piecemeal: the bytes of a data frame are returned as soon as they
   * arrive, as several frames of the same kind, instead of being held and copied together until the frame is
   * complete. For a reader that only passes the bytes on (the client's output), where a frame rarely lines up with a
   * socket read and reassembling it cost a copy of every byte. JSON frames are always whole.
   */
  streamData?: boolean;
}

/**
 * Incremental decoder. `push` returns every complete frame (and, with `streamData`, every piece of a data frame
 * that has arrived); a partial frame stays buffered. Throws a LockdError('protocol_error') on an unknown kind or an
 * oversized length, after which the stream is unusable.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly streamData: boolean;
  /** streamData: bytes of the current data frame still to come (its earlier bytes were delivered already). */
  private dataLeft = 0;
  private dataKind: FrameKind = FrameKind.Stdout;

  constructor(
    private readonly maxJson = MAX_JSON_FRAME,
    private readonly maxData = MAX_DATA_FRAME,
    options: FrameDecoderOptions = {},
  ) {
    this.streamData = options.streamData ?? false;
  }

  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    if (chunk.length === 0) return frames;
    if (this.dataLeft > 0) {
      const n = Math.min(this.dataLeft, chunk.length);
      frames.push({ kind: this.dataKind, payload: chunk.subarray(0, n) });
      this.dataLeft -= n;
      if (n === chunk.length) return frames;
      chunk = chunk.subarray(n);
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= HEADER_BYTES) {
      const head = this.peek(HEADER_BYTES);
      const length = head.readUInt32BE(0);
      const kind = head.readUInt8(4);
      if (kind > FrameKind.Stdin) {
        throw new LockdError('protocol_error', `unknown frame kind ${kind}`);
      }
      const limit = kind === FrameKind.Json ? this.maxJson : this.maxData;
      if (length > limit) {
        throw new LockdError('protocol_error', `frame of ${length} bytes exceeds the ${limit}-byte limit`);
      }
      if (this.buffered < HEADER_BYTES + length) {
        if (this.streamData && kind !== FrameKind.Json) {
          // Hand over what has arrived of it, chunk by chunk (no copy); the rest follows in later pushes.
          this.take(HEADER_BYTES);
          for (const c of this.chunks) if (c.length > 0) frames.push({ kind: kind as FrameKind, payload: c });
          this.dataKind = kind as FrameKind;
          this.dataLeft = length - this.buffered;
          this.chunks = [];
          this.buffered = 0;
        }
        break;
      }
      const whole = this.take(HEADER_BYTES + length);
      frames.push({ kind: kind as FrameKind, payload: whole.subarray(HEADER_BYTES) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      this.buffered -= n;
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const joined = Buffer.concat(this.chunks);
    this.chunks = joined.length > n ? [joined.subarray(n)] : [];
    this.buffered -= n;
    return joined.subarray(0, n);
  }
}
