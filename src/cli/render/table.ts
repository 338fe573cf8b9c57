/** Aligned text columns for status-like output; the last column is never padded (no trailing blanks). */
import { visibleLength } from './style.js';

export function table(rows: string[][], indent = '  ', gap = '  '): string {
  if (rows.length === 0) return '';
  const cols = Math.max(...rows.map((r) => r.length));
  const widths: number[] = [];
  for (let c = 0; c < cols; c++) widths.push(Math.max(...rows.map((r) => visibleLength(r[c] ?? ''))));
  return `${rows
    .map((r) => {
      const cells = r.map((cell, c) => (c === r.length - 1 ? cell : cell + ' '.repeat(widths[c]! - visibleLength(cell))));
      return (indent + cells.join(gap)).trimEnd();
    })
    .join('\n')}\n`;
}

/** Cut a long field for a table cell, keeping its start. */
export function clip(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
