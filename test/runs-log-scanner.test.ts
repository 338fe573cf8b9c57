/**
 * LogScanner against a line-by-line reference: whatever the chunking (tags and multi-byte characters cut anywhere,
 * lines straddling several chunks, lines over the cap), with or without markers, the findings are those of taking
 * the whole output apart line by line. The scanner skips lines without a tag once no marker is pending, so the
 * cases mix tagged and untagged lines, markers that match early, late or never.
 */
import test from 'ava';
import fc from 'fast-check';
import { LogScanner, STRUCTURED_TAG, SUMMARY_TAG, type ScanResult } from '../src/runs/log-scanner.js';
import { compileVerdictOptions, type VerdictOptions } from '../src/runs/verdict.js';

const SUMMARY_FAILED_RE = /(?:^|[\s,;])failed=(\d+)(?![\w.])/;

/** The findings, computed the obvious way: split on \n, cut each line to the cap, decode, test everything. */
function reference(bytes: Buffer, options: Partial<VerdictOptions>, maxLineBytes: number): ScanResult {
  const compiled = compileVerdictOptions(options);
  const lists = { required: compiled.requireMarker, required_all: compiled.requireAll, forbidden: compiled.forbidMarker };
  const matched = new Map<object, boolean>();
  const out: ScanResult = {
    structured: null,
    summary: null,
    markers: { required: [], required_all: [], forbidden: [] },
    bytes: bytes.length,
    lines: 0,
    truncatedLines: 0,
  };
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      lines.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length) lines.push(bytes.subarray(start));
  for (const raw of lines) {
    out.lines++;
    const truncated = raw.length > maxLineBytes;
    if (truncated) out.truncatedLines++;
    let line = raw.subarray(0, maxLineBytes).toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    for (const m of [...lists.required, ...lists.required_all, ...lists.forbidden]) if (m.regex.test(line)) matched.set(m, true);
    const s = line.indexOf(STRUCTURED_TAG);
    if (s !== -1) out.structured = { raw: line.slice(s + STRUCTURED_TAG.length).trim(), truncated };
    const u = line.indexOf(SUMMARY_TAG);
    if (u !== -1) {
      const text = line.slice(u + SUMMARY_TAG.length).trim();
      const m = SUMMARY_FAILED_RE.exec(text);
      out.summary = { raw: text, failed: m ? Number(m[1]) : null };
    }
  }
  for (const key of ['required', 'required_all', 'forbidden'] as const) {
    out.markers[key] = lists[key].map((m) => ({ pattern: m.pattern, matched: matched.get(m) ?? false }));
  }
  return out;
}

function scanInChunks(bytes: Buffer, options: Partial<VerdictOptions>, maxLineBytes: number, cuts: number[]): ScanResult {
  const scanner = new LogScanner(compileVerdictOptions(options), { maxLineBytes });
  let at = 0;
  for (const c of [...new Set(cuts.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b)) {
    scanner.push(bytes.subarray(at, c));
    at = c;
  }
  scanner.push(bytes.subarray(at));
  return scanner.end();
}

// Pieces that make lines interesting: both tags (whole and as a bare prefix), payloads, CRLF, multi-byte UTF-8.
const token = fc.constantFrom(
  '\n',
  '\n',
  '\r\n',
  'x',
  'abc ',
  'ü✓',
  'TEST_',
  `${STRUCTURED_TAG} {"schema_version":1,"failed":0,"done":true}`,
  `${STRUCTURED_TAG}{"failed":2}`,
  `${SUMMARY_TAG} failed=0`,
  `${SUMMARY_TAG} passed=3, failed=12`,
  'READY',
  'PANIC',
  '[  12.5] ',
);

const markerSets = fc.constantFrom<Partial<VerdictOptions>>(
  {},
  { requireMarker: ['READY'] },
  { requireAll: ['^abc', 'ü✓'] },
  { forbidMarker: ['PANIC'] },
  { requireMarker: ['never-printed'] },
  { requireAll: ['READY$'], forbidMarker: ['x{3}'] },
);

test('findings do not depend on how the output is cut into chunks (random outputs, caps and cuts)', (t) => {
  fc.assert(
    fc.property(fc.array(token, { maxLength: 60 }), markerSets, fc.integer({ min: 1, max: 90 }), fc.array(fc.nat(), { maxLength: 12 }), (tokens, options, maxLineBytes, cuts) => {
      const bytes = Buffer.from(tokens.join(''), 'utf8');
      const expected = reference(bytes, options, maxLineBytes);
      const whole = scanInChunks(bytes, options, maxLineBytes, []);
      const chunked = scanInChunks(bytes, options, maxLineBytes, cuts);
      t.deepEqual(whole, expected);
      t.deepEqual(chunked, expected);
    }),
    { numRuns: 3000 },
  );
});

test('every byte boundary: a tag cut anywhere is still found, once no marker is pending', (t) => {
  const text = `noise line\nREADY\n[1.0] ${STRUCTURED_TAG} {"failed":0}\nmore\n${SUMMARY_TAG} failed=0\ntail without newline`;
  const bytes = Buffer.from(text, 'utf8');
  for (const options of [{}, { requireMarker: ['READY'] }]) {
    const expected = reference(bytes, options, 1024);
    t.not(expected.structured, null);
    t.not(expected.summary, null);
    for (let a = 0; a <= bytes.length; a++) {
      t.deepEqual(scanInChunks(bytes, options, 1024, [a]), expected, `cut at ${a}`);
      t.deepEqual(scanInChunks(bytes, options, 1024, [a, a + 1, a + 3]), expected, `cuts at ${a}, +1, +3`);
    }
  }
});

test('long runs of lines without tags are counted, including lines over the cap', (t) => {
  const lines = Array.from({ length: 1000 }, (_, i) => (i % 97 === 0 ? 'y'.repeat(300) : `line ${i}`));
  const bytes = Buffer.from(`${lines.join('\n')}\n${SUMMARY_TAG} failed=1\n`, 'utf8');
  const scan = scanInChunks(bytes, {}, 256, [100, 4096, 4097, 9000]);
  t.deepEqual(scan, reference(bytes, {}, 256));
  t.is(scan.lines, 1001);
  t.is(scan.truncatedLines, 11);
  t.deepEqual(scan.summary, { raw: 'failed=1', failed: 1 });
});
