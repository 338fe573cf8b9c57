/** Escaping values into the two service file formats, so any install path (spaces, %, &, $) survives. */
import { LockdError } from '../util/errors.js';

/**
 * One word of a systemd ExecStart= line. systemd expands `%` specifiers everywhere and `$VAR` in arguments,
 * so literal ones are doubled (`$` only in arguments: the executable's name gets no variable expansion, and
 * `$$` there would stay two dollars). A word with whitespace or `;` (a command separator when it stands alone)
 * is put in double quotes with C-style escapes. systemd refuses quotes and backslashes in an executable's
 * name altogether, so such a node path is an error with a way out, not a unit that fails to load later.
 */
export function systemdExecWord(word: string, role: 'executable' | 'argument' = 'argument'): string {
  if (role === 'executable' && /["'\\\x00-\x1f]/.test(word)) {
    throw new LockdError(
      'unsupported_path',
      `systemd does not accept quotes, backslashes or control characters in an executable's path: ${JSON.stringify(word)}; link node from a plain path (ln -s "${word}" /usr/local/bin/node) and run lockd with that node`,
    );
  }
  let literal = word.replace(/%/g, '%%');
  if (role === 'argument') literal = literal.replace(/\$/g, '$$$$');
  if (literal !== '' && !/[\s"'\\;]/.test(literal)) return literal;
  return `"${literal.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/** Text content of a plist <string> element. */
export function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
