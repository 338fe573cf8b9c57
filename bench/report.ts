/** What a scenario hands back, and how the bench prints it: one table, every comparison on the same row. */

export interface Target {
  /** What is compared, e.g. "lockd run / node -e 0 (median)". */
  name: string;
  value: number | null;
  op: '<=' | '>=';
  limit: number;
  unit: string;
  /** null when the value could not be measured (e.g. a skipped comparison). */
  met: boolean | null;
}

export interface Row {
  measurement: string;
  value: string;
  /** Side-by-side comparison or spread, e.g. "flock 2.1 ms" or "p10 1.0 / p90 3.2". */
  detail?: string;
}

export interface ScenarioResult {
  name: string;
  title: string;
  size: Record<string, number | string>;
  /** Machine-readable figures (ms, bytes, ratios). */
  metrics: Record<string, unknown>;
  rows: Row[];
  targets: Target[];
  notes: string[];
  /** Set when the scenario could not run at all here. */
  skipped?: string;
  /** Set when it failed; the bench carries on with the next scenario. */
  error?: string;
  seconds: number;
  /** The machine's 1-minute load average when the scenario started and ended. */
  load_1m?: { before: number; after: number };
}

export function target(name: string, value: number | null, op: '<=' | '>=', limit: number, unit: string): Target {
  const met = value === null || !Number.isFinite(value) ? null : op === '<=' ? value <= limit : value >= limit;
  return { name, value, op, limit, unit, met };
}

export function ms(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(digits)} ms`;
}

export function mib(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined || !Number.isFinite(bytes) ? 'n/a' : `${(bytes / 1048576).toFixed(1)} MiB`;
}

export function ratio(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(2)}x`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** A plain-text table: scenario, measurement, value, detail; then each target with its verdict. */
export function renderTable(results: ScenarioResult[]): string {
  const lines: string[][] = [['scenario', 'measurement', 'value', 'side by side / spread']];
  for (const r of results) {
    if (r.skipped) {
      lines.push([r.name, 'skipped', '', r.skipped]);
      continue;
    }
    if (r.error) {
      lines.push([r.name, 'FAILED', '', r.error.split('\n')[0]!]);
      continue;
    }
    r.rows.forEach((row, i) => {
      lines.push([i === 0 ? r.name : '', row.measurement, row.value, row.detail ?? '']);
    });
  }
  const widths = [0, 1, 2].map((c) => Math.min(48, Math.max(...lines.map((l) => l[c]!.length))));
  const fmt = (l: string[]) => `${pad(l[0]!, widths[0]!)}  ${pad(l[1]!, widths[1]!)}  ${pad(l[2]!, widths[2]!)}  ${l[3]}`.trimEnd();
  const out = [fmt(lines[0]!), '-'.repeat(widths[0]! + widths[1]! + widths[2]! + 30), ...lines.slice(1).map(fmt)];
  const targets = results.flatMap((r) => r.targets.map((t) => ({ r, t })));
  if (targets.length) {
    out.push('', 'targets:');
    for (const { r, t } of targets) {
      const verdict = t.met === null ? 'not measured' : t.met ? 'met' : 'MISSED';
      const v = t.value === null || !Number.isFinite(t.value) ? 'n/a' : `${t.value.toFixed(t.unit === 'x' ? 2 : 1)}${t.unit === 'x' ? 'x' : ` ${t.unit}`}`;
      out.push(`  ${pad(verdict, 12)} ${r.name}: ${t.name} = ${v} (target ${t.op} ${t.limit}${t.unit === 'x' ? 'x' : ` ${t.unit}`})`);
    }
  }
  const notes = results.flatMap((r) => r.notes.map((n) => `  ${r.name}: ${n}`));
  if (notes.length) out.push('', 'notes:', ...notes);
  return out.join('\n');
}
