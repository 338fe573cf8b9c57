/**
 * FrameDecoder with streamData (the client's output path): data frames come out piecemeal as their bytes arrive,
 * JSON frames whole, and nothing is lost, reordered or invented, however the stream is cut; the limits still apply.
 */
import test from 'ava';
import fc from 'fast-check';
import { FrameDecoder, FrameKind, MAX_DATA_FRAME, MAX_JSON_FRAME, encodeFrame, type Frame } from '../src/protocol/framing.js';
import { isLockdError } from '../src/util/errors.js';

type Item = { kind: FrameKind; bytes: Buffer };

/** Adjacent data of one kind merged, empty data dropped: what a reader that passes output on can observe. */
function normalize(items: Item[]): Array<{ kind: number; hex: string }> {
  const out: Array<{ kind: number; hex: string }> = [];
  for (const it of items) {
    if (it.kind !== FrameKind.Json && it.bytes.length === 0) continue;
    const last = out[out.length - 1];
    if (last && it.kind !== FrameKind.Json && last.kind === it.kind) last.hex += it.bytes.toString('hex');
    else out.push({ kind: it.kind, hex: it.bytes.toString('hex') });
  }
  return out;
}

function decodeAll(stream: Buffer, cuts: number[], streamData: boolean): Frame[] {
  const dec = new FrameDecoder(MAX_JSON_FRAME, MAX_DATA_FRAME, { streamData });
  const frames: Frame[] = [];
  let at = 0;
  for (const c of [...new Set(cuts.map((x) => x % (stream.length + 1)))].sort((a, b) => a - b)) {
    frames.push(...dec.push(stream.subarray(at, c)));
    at = c;
  }
  frames.push(...dec.push(stream.subarray(at)));
  if (dec.pendingBytes !== 0) throw new Error('bytes left in the decoder at the end of a whole stream');
  return frames;
}

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  fc.record({ kind: fc.constant(FrameKind.Json as FrameKind), bytes: fc.json().map((j) => Buffer.from(j, 'utf8')) }),
  fc.record({ kind: fc.constantFrom<FrameKind>(FrameKind.Stdout, FrameKind.Stderr, FrameKind.Stdin), bytes: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) }),
);

test('streamData: however the stream is cut, the JSON frames come whole and the data bytes in order', (t) => {
  fc.assert(
    fc.property(fc.array(itemArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (items, cuts) => {
      const stream = Buffer.concat(items.map((i) => encodeFrame(i.kind, i.bytes)));
      const streamed = decodeAll(stream, cuts, true);
      const whole = decodeAll(stream, cuts, false);
      // Without streamData: exactly the frames sent.
      t.deepEqual(
        whole.map((f) => ({ kind: f.kind, hex: f.payload.toString('hex') })),
        items.map((i) => ({ kind: i.kind, hex: i.bytes.toString('hex') })),
      );
      // With it: JSON frames identical, data the same bytes of the same kinds in the same order, never an empty piece.
      t.deepEqual(normalize(streamed.map((f) => ({ kind: f.kind, bytes: f.payload }))), normalize(items));
      for (const f of streamed) if (f.kind !== FrameKind.Json) t.true(f.payload.length > 0 || items.some((i) => i.kind === f.kind && i.bytes.length === 0));
    }),
    { numRuns: 2000 },
  );
});

test('streamData: a data frame split over reads is handed over as it arrives, without waiting for its end', (t) => {
  const payload = Buffer.alloc(100_000, 7);
  const stream = Buffer.concat([encodeFrame(FrameKind.Stdout, payload), encodeFrame(FrameKind.Json, Buffer.from('{"type":"ok"}'))]);
  const dec = new FrameDecoder(MAX_JSON_FRAME, MAX_DATA_FRAME, { streamData: true });
  const first = dec.push(stream.subarray(0, 65_536));
  t.is(first.length, 1);
  t.is(first[0]!.kind, FrameKind.Stdout);
  t.is(first[0]!.payload.length, 65_536 - 5);
  t.is(dec.pendingBytes, 0, 'nothing is held back');
  const rest = dec.push(stream.subarray(65_536));
  t.deepEqual(
    rest.map((f) => [f.kind, f.payload.length]),
    [
      [FrameKind.Stdout, 100_000 - (65_536 - 5)],
      [FrameKind.Json, 13],
    ],
  );
});

test('streamData: the limits and kinds are still checked from the header, before any byte is delivered', (t) => {
  const dec = new FrameDecoder(MAX_JSON_FRAME, MAX_DATA_FRAME, { streamData: true });
  const big = Buffer.alloc(5);
  big.writeUInt32BE(MAX_DATA_FRAME + 1, 0);
  big.writeUInt8(FrameKind.Stdout, 4);
  t.true(
    isLockdError(
      t.throws(() => dec.push(big)),
      'protocol_error',
    ),
  );
  const bad = Buffer.from([0, 0, 0, 1, 9, 0]);
  t.true(
    isLockdError(
      t.throws(() => new FrameDecoder(MAX_JSON_FRAME, MAX_DATA_FRAME, { streamData: true }).push(bad)),
      'protocol_error',
    ),
  );
});
