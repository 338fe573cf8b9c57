/** Escaping values into the two service file formats, so any install path (spaces, quotes, %, &) survives. */

/**
 * One word of a systemd ExecStart= line. systemd expands `%` specifiers and `$VAR` in command lines, so
 * literal ones are doubled; a word with whitespace, quotes, backslashes or `;` (a command separator when it
 * stands alone) is put in double quotes with C-style escapes.
 */
export function systemdExecWord(word: string): string {
  const literal = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (literal !== '' && !/[\s"'\\;]/.test(literal)) return literal;
  return `"${literal.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/** Text content of a plist <string> element. */
export function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
