/**
 * Streaming scan of a run's output for what the verdict needs: the last
 * `TEST_RESULT_JSON: {...}` line, the last `TEST_SUMMARY: failed=N` line, and
 * which marker regexes matched some line.
 *
 * Logs of emulator runs reach hundreds of MB, so nothing is kept but the
 * current partial line (capped at `maxLineBytes`; the rest of a longer line is
 * dropped and the line is scanned as truncated) and the last structured and
 * summary payloads. Markers are matched per line, against the line without its
 * `\n` / `\r\n` terminator; a marker that has matched is not tested again.
 *
 * The two tags are recognised anywhere in a line, because emulator consoles
 * and test harnesses commonly prefix lines with timestamps or CPU ids.
 */
import { createReadStream } from 'node:fs';
import type { MarkerOutcome, MarkersOutcome } from './result.js';
import type { CompiledMarker, CompiledVerdictOptions } from './verdict-options.js';

export const STRUCTURED_TAG = 'TEST_RESULT_JSON:';
export const SUMMARY_TAG = 'TEST_SUMMARY:';
/** Both tags share this prefix, so one byte search rules out most lines cheaply. */
const TAG_PREFIX = Buffer.from('TEST_');
const NEWLINE = 0x0a;

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export interface ScannedStructured {
  /** Text after the tag, trimmed. */
  raw: string;
  /** The line exceeded maxLineBytes, so `raw` is cut short. */
  truncated: boolean;
}

export interface ScannedSummary {
  /** Text after the tag, trimmed. */
  raw: string;
  /** N from `failed=N`, or null when the line has no such field. */
  failed: number | null;
}

export interface ScanResult {
  structured: ScannedStructured | null;
  summary: ScannedSummary | null;
  markers: MarkersOutcome;
  bytes: number;
  /** Lines seen, counting a final line without a newline. */
  lines: number;
  truncatedLines: number;
}

export interface LogScannerOptions {
  maxLineBytes?: number;
}

interface MarkerState {
  marker: CompiledMarker;
  matched: boolean;
}

const SUMMARY_FAILED_RE = /(?:^|[\s,;])failed=(\d+)(?![\w.])/;

export class LogScanner {
  private readonly maxLineBytes: number;
  private readonly required: MarkerState[];
  private readonly requiredAll: MarkerState[];
  private readonly forbidden: MarkerState[];
  /** Markers not matched yet; when zero, lines without a tag need not be decoded. */
  private pending: MarkerState[];

  private partial: Buffer[] = [];
  private partialBytes = 0;
  private partialTruncated = false;

  private structured: ScannedStructured | null = null;
  private summary: ScannedSummary | null = null;
  private bytes = 0;
  private lines = 0;
  private truncatedLines = 0;
  private ended = false;

  constructor(options: Pick<CompiledVerdictOptions, 'requireMarker' | 'requireAll' | 'forbidMarker'>, scannerOptions: LogScannerOptions = {}) {
    this.maxLineBytes = Math.max(1, scannerOptions.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    const state = (list: readonly CompiledMarker[]): MarkerState[] => list.map((marker) => ({ marker, matched: false }));
    this.required = state(options.requireMarker);
    this.requiredAll = state(options.requireAll);
    this.forbidden = state(options.forbidMarker);
    this.pending = [...this.required, ...this.requiredAll, ...this.forbidden];
  }

  /** Feed the next chunk of output, in arrival order. */
  push(chunk: Buffer | string): void {
    if (this.ended) throw new Error('LogScanner.push() after end()');
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.bytes += buf.length;
    let start = 0;
    // Where the next tag starts, at or after `start`: -1 none left in this chunk, -2 not searched yet. Searched
    // only once no marker is pending; from then on a line without a tag is just counted, never sliced or decoded
    // (one search per tag instead of work per line: most of the cost of streaming output through a run).
    let tag = -2;
    while (start < buf.length) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl === -1) {
        this.appendPartial(buf.subarray(start));
        return;
      }
      if (this.partialBytes > 0 || this.partialTruncated) {
        // The line began in an earlier chunk (a tag may straddle the boundary): scan it joined.
        this.appendPartial(buf.subarray(start, nl));
        this.flushPartial();
      } else {
        let scan = this.pending.length > 0;
        if (!scan) {
          if (tag === -2 || (tag >= 0 && tag < start)) tag = buf.indexOf(TAG_PREFIX, start);
          scan = tag >= 0 && tag < nl;
        }
        if (scan) {
          // The whole line is inside this chunk; scan it without copying.
          const piece = buf.subarray(start, nl);
          if (piece.length > this.maxLineBytes) this.scanLine(piece.subarray(0, this.maxLineBytes), true);
          else this.scanLine(piece, false);
        } else {
          // No tag and no marker left to look for: nothing in this line can change the findings.
          this.lines++;
          if (nl - start > this.maxLineBytes) this.truncatedLines++;
        }
      }
      start = nl + 1;
    }
  }

  /** Finish: a trailing line without a newline is scanned too. Returns the findings. */
  end(): ScanResult {
    if (!this.ended) {
      if (this.partialBytes > 0 || this.partialTruncated) this.flushPartial();
      this.ended = true;
    }
    return this.result();
  }

  /** Findings so far (the current partial line is not included). */
  result(): ScanResult {
    const outcome = (list: MarkerState[]): MarkerOutcome[] => list.map((s) => ({ pattern: s.marker.pattern, matched: s.matched }));
    return {
      structured: this.structured,
      summary: this.summary,
      markers: { required: outcome(this.required), required_all: outcome(this.requiredAll), forbidden: outcome(this.forbidden) },
      bytes: this.bytes,
      lines: this.lines,
      truncatedLines: this.truncatedLines,
    };
  }

  private appendPartial(piece: Buffer): void {
    const room = this.maxLineBytes - this.partialBytes;
    if (piece.length > room) {
      this.partialTruncated = true;
      piece = piece.subarray(0, room);
    }
    if (piece.length === 0) return;
    // Copy: holding a subarray would pin the caller's whole (possibly large) chunk.
    this.partial.push(Buffer.from(piece));
    this.partialBytes += piece.length;
  }

  private flushPartial(): void {
    const line = this.partial.length === 1 ? this.partial[0]! : Buffer.concat(this.partial, this.partialBytes);
    const truncated = this.partialTruncated;
    this.partial = [];
    this.partialBytes = 0;
    this.partialTruncated = false;
    this.scanLine(line, truncated);
  }

  private scanLine(bytes: Buffer, truncated: boolean): void {
    this.lines++;
    if (truncated) this.truncatedLines++;
    const hasTag = bytes.indexOf(TAG_PREFIX) !== -1;
    if (!hasTag && this.pending.length === 0) return;

    let line = bytes.toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);

    if (this.pending.length > 0) {
      let matchedAny = false;
      for (const state of this.pending) {
        if (state.marker.regex.test(line)) {
          state.matched = true;
          matchedAny = true;
        }
      }
      if (matchedAny) this.pending = this.pending.filter((s) => !s.matched);
    }

    if (!hasTag) return;
    const structuredAt = line.indexOf(STRUCTURED_TAG);
    if (structuredAt !== -1) {
      // Last one wins: a harness may print progress results before the final one.
      this.structured = { raw: line.slice(structuredAt + STRUCTURED_TAG.length).trim(), truncated };
    }
    const summaryAt = line.indexOf(SUMMARY_TAG);
    if (summaryAt !== -1) {
      const raw = line.slice(summaryAt + SUMMARY_TAG.length).trim();
      const m = SUMMARY_FAILED_RE.exec(raw);
      this.summary = { raw, failed: m ? Number(m[1]) : null };
    }
  }
}

/**
 * Stream a log file through a LogScanner. Memory stays bounded by the read
 * chunk size plus maxLineBytes, whatever the file size.
 */
export async function scanLogFile(file: string, options: Pick<CompiledVerdictOptions, 'requireMarker' | 'requireAll' | 'forbidMarker'>, scannerOptions: LogScannerOptions = {}): Promise<ScanResult> {
  const scanner = new LogScanner(options, scannerOptions);
  const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
  for await (const chunk of stream) scanner.push(chunk as Buffer);
  return scanner.end();
}
