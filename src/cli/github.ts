/**
 * GitHub Actions step outputs and job summary, for `lockd acquire` / `lockd release` in a workflow:
 *
 *   - id: lock
 *     run: lockd acquire qemu --wait 600
 *   - run: echo "waited ${{ steps.lock.outputs.queue_wait_seconds }} s for ${{ steps.lock.outputs.lock_id }}"
 *
 * Outputs are appended to the file named by GITHUB_OUTPUT (`name=value` lines, or the heredoc form for a value
 * with a newline), the summary line to GITHUB_STEP_SUMMARY. Outside Actions (variables unset) nothing happens.
 * A file that cannot be written is reported on stderr but never fails the lock operation itself.
 */
import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

export interface StepReport {
  status: string;
  lockId: string;
  queueWaitMs: number | null;
  /** The Markdown line for the job summary. */
  summary: string;
}

export function formatOutputs(values: Record<string, string>): string {
  let out = '';
  for (const [name, value] of Object.entries(values)) {
    if (!/[\r\n]/.test(value)) {
      out += `${name}=${value}\n`;
      continue;
    }
    let delim: string;
    do delim = `ghadelimiter_${randomBytes(8).toString('hex')}`;
    while (value.includes(delim));
    out += `${name}<<${delim}\n${value}\n${delim}\n`;
  }
  return out;
}

/** Seconds with one decimal, as a plain number string ("0", "12.5"). */
export function secondsText(ms: number | null): string {
  if (ms === null) return '';
  return String(Math.round(ms / 100) / 10);
}

/** Markdown inline code; a backtick in the value would end it early, so it becomes a quote. */
export function mdCode(s: string): string {
  return `\`${s.replace(/[\r\n]+/g, ' ').replace(/`/g, "'")}\``;
}

/** Write the step outputs and summary line when running under GitHub Actions; returns whether it did. */
export function reportToGithub(report: StepReport, env: NodeJS.ProcessEnv = process.env): boolean {
  const outputFile = env.GITHUB_OUTPUT;
  const summaryFile = env.GITHUB_STEP_SUMMARY;
  if (!outputFile && !summaryFile) return false;
  const tryAppend = (file: string, text: string, what: string) => {
    try {
      appendFileSync(file, text);
    } catch (e) {
      process.stderr.write(`lockd: warning: cannot write the ${what} ${file}: ${(e as Error).message}\n`);
    }
  };
  if (outputFile) {
    tryAppend(outputFile, formatOutputs({ status: report.status, lock_id: report.lockId, queue_wait_seconds: secondsText(report.queueWaitMs) }), 'step outputs file');
  }
  if (summaryFile) tryAppend(summaryFile, `${report.summary}\n`, 'step summary file');
  return true;
}
