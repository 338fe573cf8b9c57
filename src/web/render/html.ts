/**
 * HTML built by a tagged template that escapes every interpolated value unless it is already Html. Everything the
 * page shows comes from other users' holder strings, command lines and logs, so escaping is the default and
 * raw markup has to be asked for by name (Html values made by these templates).
 */

/** Markup that is safe to insert as is (it came out of `html` or `raw`). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text as HTML text or attribute value (quotes included, so it is safe inside "…" and '…'). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Part = Html | string | number | null | undefined | false | readonly Part[];

function part(v: Part): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(part).join('');
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Markup written by this code itself (an SVG path, a constant); never pass anything that came from outside. */
export function raw(text: string): Html {
  return new Html(text);
}
