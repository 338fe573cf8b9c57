/**
 * `lockd completion bash|zsh|fish`: a completion script generated from the CLI's own tables (the command
 * registry, `run`'s option table, each command's help text), so a new command or option shows up in the
 * completion without anyone editing three shell dialects by hand.
 */
import { COMMON_OPTIONS, parse, type OptionsConfig } from '../args.js';
import { LockdError } from '../../util/errors.js';
import { LOCKD_VERSION } from '../../protocol/version.js';
import { EXIT } from '../exit-codes.js';
import type { CommandContext, CommandTable } from '../command-types.js';

export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

export const COMPLETION_HELP = `Usage: lockd completion bash|zsh|fish

Print a completion script for the shell: commands, their options, and option values that are
directories, files or fixed choices.
  bash:  lockd completion bash > ~/.local/share/bash-completion/completions/lockd
         (or add 'source <(lockd completion bash)' to ~/.bashrc)
  zsh:   lockd completion zsh > "\${fpath[1]}/_lockd"   (a directory in $fpath; then restart zsh)
         (or add 'source <(lockd completion zsh)' to ~/.zshrc, after compinit)
  fish:  lockd completion fish > ~/.config/fish/completions/lockd.fish
Regenerate after upgrading lockd.
`;

/** What an option's value is, for completing it. */
export type ValueKind = 'none' | 'dir' | 'file' | 'word' | { choices: string[] };

export interface OptionSpec {
  long: string;
  short?: string;
  kind: ValueKind;
  multiple: boolean;
  description: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  options: OptionSpec[];
  /** Fixed first positional words (service print/install/uninstall, completion bash/zsh/fish). */
  subcommands: string[];
  /** Everything after the options is a command line of its own (`lockd run ... -- make -j4`). */
  takesCommand: boolean;
}

const DIR_OPTIONS = new Set(['root', 'runs-root', 'global-dir', 'state-dir']);
const FILE_OPTIONS = new Set(['socket', 'log']);
const CHOICES: Record<string, string[]> = { manager: ['systemd', 'launchd'] };

function kindFor(name: string, takesValue: boolean): ValueKind {
  if (!takesValue) return 'none';
  if (DIR_OPTIONS.has(name)) return 'dir';
  if (FILE_OPTIONS.has(name)) return 'file';
  const c = CHOICES[name];
  return c ? { choices: c } : 'word';
}

/**
 * One-line descriptions from a help text's option lines: `  -i, --interactive   forward stdin`,
 * `  --root DIR          build root ...`. Lines listing several options at once give none.
 * A value placeholder starts with a capital (DIR, NAME[:shared]); the description may follow after one space.
 */
export function helpDescriptions(help: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of help.split('\n')) {
    const m = /^\s+(?:-[A-Za-z], )?--([a-z][a-z0-9-]*)(?:(?:[ =][A-Z<]\S*)?\s+|\s{2,})(\S.*)$/.exec(line);
    if (m && !m[2]!.startsWith('-')) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

/**
 * Options a help text defines, for commands that do not export their option table: every `--name [VALUE]` of
 * the Usage lines, and the leading option of each option line (`  --root DIR   build root ...`, or several
 * separated by two spaces). Options mentioned in descriptions ("see --force") are not taken.
 */
export function helpOptions(help: string): OptionsConfig {
  const out: OptionsConfig = {};
  const add = (name: string, takesValue: boolean) => {
    out[name] = { type: takesValue || out[name]?.type === 'string' ? 'string' : 'boolean' };
  };
  const VALUE = String.raw`(?:[ =]([A-Z][^\s\]]*|<[^>]+>))?`;
  for (const line of help.split('\n')) {
    if (/^\s*Usage:/.test(line) || /^\s+lockd \S/.test(line)) {
      for (const m of line.matchAll(new RegExp(String.raw`(?<![\w-])--([a-z][a-z0-9-]*)${VALUE}`, 'g'))) add(m[1]!, m[2] !== undefined);
    } else if (/^\s+-/.test(line)) {
      for (const seg of line.trim().split(/\s{2,}/)) {
        const m = new RegExp(`^(?:-[A-Za-z](?:, |/))?--([a-z][a-z0-9-]*)${VALUE}`).exec(seg);
        if (m) add(m[1]!, m[2] !== undefined);
      }
    }
  }
  return out;
}

function optionSpecs(options: OptionsConfig, help: string): OptionSpec[] {
  const described = helpDescriptions(help);
  return Object.entries(options).map(([long, o]) => ({
    long,
    ...(o.short ? { short: o.short } : {}),
    kind: kindFor(long, o.type === 'string'),
    multiple: o.multiple === true,
    description: described.get(long) ?? (long === 'help' ? "show this command's help" : long === 'socket' ? 'daemon socket path' : long === 'state-dir' ? 'daemon state directory' : ''),
  }));
}

/** The completion model of the whole CLI, built from the command registry and the commands' own tables. */
export async function completionSpec(commands: CommandTable): Promise<CommandSpec[]> {
  const specs: CommandSpec[] = [];
  for (const [name, cmd] of Object.entries(commands)) {
    let help = '';
    try {
      help = await cmd.help();
    } catch {
      // A command whose module cannot load still gets its name and the common options.
    }
    let options: OptionsConfig;
    let subcommands: string[] = [];
    if (name === 'run') {
      options = (await import('./run.js')).RUN_OPTIONS;
    } else if (name === 'service') {
      const s = await import('./service.js');
      options = s.SERVICE_OPTIONS;
      subcommands = [...s.SERVICE_SUBCOMMANDS];
    } else if (name === 'completion') {
      options = COMMON_OPTIONS;
      subcommands = [...COMPLETION_SHELLS];
    } else {
      options = { ...helpOptions(help), ...COMMON_OPTIONS };
    }
    specs.push({ name, summary: cmd.summary, options: optionSpecs(options, help), subcommands, takesCommand: name === 'run' });
  }
  return specs;
}

const header = (shell: CompletionShell) => `${shell} completion for lockd. Generated by \`lockd completion ${shell}\` (lockd ${LOCKD_VERSION}); regenerate after upgrading lockd.`;

function takesValue(o: OptionSpec): boolean {
  return o.kind !== 'none';
}

function flags(o: OptionSpec): string[] {
  return [`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])];
}

// ---------------------------------------------------------------- bash

/** A word safe inside a bash `case` pattern and a double-quoted string (option names and choices only). */
function bashWord(s: string): string {
  if (!/^[A-Za-z0-9_.:+,/@-]+$/.test(s)) throw new LockdError('internal', `cannot put ${JSON.stringify(s)} in a bash completion script`);
  return s;
}

export function bashCompletion(specs: CommandSpec[]): string {
  const names = specs.map((c) => bashWord(c.name)).join(' ');
  const valueCases: string[] = [];
  const optionCases: string[] = [];
  const subCases: string[] = [];
  for (const c of specs) {
    optionCases.push(`        ${bashWord(c.name)}) echo "${c.options.flatMap((o) => flags(o).map(bashWord)).join(' ')}" ;;`);
    if (c.subcommands.length) subCases.push(`        ${bashWord(c.name)}) echo "${c.subcommands.map(bashWord).join(' ')}" ;;`);
    const byKind = new Map<string, string[]>();
    for (const o of c.options.filter(takesValue)) {
      const k = typeof o.kind === 'object' ? `choices ${o.kind.choices.map(bashWord).join(' ')}` : o.kind;
      byKind.set(k, [...(byKind.get(k) ?? []), ...flags(o).map((f) => `"${bashWord(c.name)} ${bashWord(f)}"`)]);
    }
    for (const [k, pats] of byKind) valueCases.push(`        ${pats.join('|')}) echo "${k}" ;;`);
  }
  return `# ${header('bash')}
# Install: lockd completion bash > ~/.local/share/bash-completion/completions/lockd

# The kind of value option $2 of command $1 takes: dir, file, word or "choices A B"; nothing for a flag.
_lockd_value_kind() {
    case "$1 $2" in
${valueCases.join('\n')}
    esac
}

_lockd_options() {
    case "$1" in
${optionCases.join('\n')}
    esac
}

_lockd_subcommands() {
    case "$1" in
${subCases.join('\n')}
    esac
}

_lockd() {
    local cur="\${COMP_WORDS[COMP_CWORD]}"
    local prev=""
    (( COMP_CWORD > 0 )) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
    # bash splits --opt=value into --opt, =, value
    if [[ $prev == = ]] && (( COMP_CWORD > 1 )); then prev="\${COMP_WORDS[COMP_CWORD-2]}"; fi
    if [[ $cur == = ]]; then cur=""; fi
    local cmd="" sub="" w i skip=0 cmdstart=0
    for (( i = 1; i < COMP_CWORD; i++ )); do
        w="\${COMP_WORDS[i]}"
        if (( skip > 0 )); then skip=$((skip - 1)); continue; fi
        if [[ -z $cmd ]]; then
            [[ $w != -* ]] && cmd="$w"
            continue
        fi
        (( cmdstart > 0 )) && continue
        case "$w" in
            --)
                [[ $cmd == run ]] && cmdstart=$((i + 1)) ;;
            -*)
                if [[ -n $(_lockd_value_kind "$cmd" "$w") ]]; then
                    if [[ \${COMP_WORDS[i+1]} == = ]]; then skip=2; else skip=1; fi
                elif [[ \${COMP_WORDS[i+1]} == = ]]; then
                    skip=2
                fi ;;
            *)
                if [[ $cmd == run ]]; then cmdstart=$i; elif [[ -z $sub ]]; then sub="$w"; fi ;;
        esac
    done

    if [[ -z $cmd ]]; then
        COMPREPLY=( $(compgen -W "${names} --help --version" -- "$cur") )
        return 0
    fi
    if (( cmdstart > 0 )); then
        # The command lockd runs: its name, then whatever (files, through -o default).
        if (( cmdstart == COMP_CWORD )); then COMPREPLY=( $(compgen -c -- "$cur") ); else COMPREPLY=(); fi
        return 0
    fi
    local kind
    kind=$(_lockd_value_kind "$cmd" "$prev")
    if [[ -n $kind ]] && { [[ $prev == -* ]]; }; then
        case "$kind" in
            dir) COMPREPLY=( $(compgen -d -- "$cur") ) ;;
            file) COMPREPLY=( $(compgen -f -- "$cur") ) ;;
            choices\\ *) COMPREPLY=( $(compgen -W "\${kind#choices }" -- "$cur") ) ;;
            *) COMPREPLY=() ;;
        esac
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=( $(compgen -W "$(_lockd_options "$cmd")" -- "$cur") )
        return 0
    fi
    if [[ -z $sub ]]; then
        local subs
        subs=$(_lockd_subcommands "$cmd")
        if [[ -n $subs ]]; then COMPREPLY=( $(compgen -W "$subs" -- "$cur") ); return 0; fi
    fi
    if [[ $cmd == run ]]; then COMPREPLY=( $(compgen -c -- "$cur") ); return 0; fi
    COMPREPLY=()
    return 0
}

complete -o bashdefault -o default -F _lockd lockd
`;
}

// ---------------------------------------------------------------- zsh

/** A zsh single-quoted word. */
function zq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Text inside an _arguments [description] or a _describe entry: brackets and colons escaped. */
function zdesc(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\[/g, '\\[').replace(/]/g, '\\]').replace(/:/g, '\\:');
}

function zshAction(o: OptionSpec): string {
  if (typeof o.kind === 'object') return `:${o.long}:(${o.kind.choices.join(' ')})`;
  if (o.kind === 'dir') return `:${o.long}:_files -/`;
  if (o.kind === 'file') return `:${o.long}:_files`;
  return `:${o.long}: `;
}

function zshOption(o: OptionSpec): string[] {
  const desc = `[${zdesc(o.description || o.long)}]`;
  const star = o.multiple ? '*' : '';
  const value = takesValue(o);
  const long = `--${o.long}${value ? '=' : ''}${desc}${value ? zshAction(o) : ''}`;
  if (!o.short) return [zq(`${star}${long}`)];
  // -x and --long exclude each other (unless repeatable); brace expansion makes the two specs.
  const excl = o.multiple ? '*' : `(-${o.short} --${o.long})`;
  const short = `-${o.short}${value ? '+' : ''}${desc}${value ? zshAction(o) : ''}`;
  return [zq(`${excl}${short}`), zq(`${excl}${long}`)];
}

export function zshCompletion(specs: CommandSpec[]): string {
  const commandList = specs.map((c) => `        ${zq(`${c.name}:${zdesc(c.summary)}`)}`).join('\n');
  const cases = specs
    .map((c) => {
      const args = c.options.flatMap(zshOption);
      if (c.subcommands.length) args.push(zq(`1:${c.name === 'completion' ? 'shell' : 'subcommand'}:(${c.subcommands.join(' ')})`));
      if (c.takesCommand) args.push(zq('*::command:_normal'));
      return `        ${c.name})\n            _arguments -s -S \\\n                ${args.join(' \\\n                ')}\n            ;;`;
    })
    .join('\n');
  return `#compdef lockd
# ${header('zsh')}
# Install: lockd completion zsh > "\${fpath[1]}/_lockd", or: source <(lockd completion zsh) after compinit

_lockd() {
    local -a lockd_commands
    lockd_commands=(
${commandList}
    )
    if (( CURRENT == 2 )); then
        _describe -t commands 'lockd command' lockd_commands
        return
    fi
    local cmd="\${words[2]}"
    # Complete the command's own words as if it were the command: drop "lockd".
    words=("\${(@)words[2,-1]}")
    (( CURRENT-- ))
    case "$cmd" in
${cases}
    esac
}

if [[ "\${funcstack[1]}" == _lockd ]]; then
    _lockd "$@"
else
    compdef _lockd lockd
fi
`;
}

// ---------------------------------------------------------------- fish

/** A fish single-quoted word. */
function fq(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function fishCompletion(specs: CommandSpec[]): string {
  const names = specs.map((c) => c.name).join(' ');
  const lines: string[] = [
    `# ${header('fish')}`,
    '# Install: lockd completion fish > ~/.config/fish/completions/lockd.fish',
    '',
    '# No file names unless an option or the command asks for them.',
    'complete -c lockd -f',
    `complete -c lockd -n __fish_use_subcommand -l help -s h -d ${fq('show help')}`,
    `complete -c lockd -n __fish_use_subcommand -l version -s V -d ${fq('show the version')}`,
  ];
  for (const c of specs) lines.push(`complete -c lockd -n __fish_use_subcommand -a ${fq(c.name)} -d ${fq(c.summary)}`);
  for (const c of specs) {
    const when = fq(`__fish_seen_subcommand_from ${c.name}`);
    lines.push('', `# lockd ${c.name}`);
    for (const o of c.options) {
      let value = '';
      if (typeof o.kind === 'object') value = ` -x -a ${fq(o.kind.choices.join(' '))}`;
      else if (o.kind === 'dir') value = ` -x -a ${fq('(__fish_complete_directories)')}`;
      else if (o.kind === 'file') value = ' -r -F';
      else if (o.kind === 'word') value = ' -x';
      lines.push(`complete -c lockd -n ${when} -l ${o.long}${o.short ? ` -s ${o.short}` : ''}${value}${o.description ? ` -d ${fq(o.description)}` : ''}`);
    }
    if (c.subcommands.length) {
      const none = fq(`__fish_seen_subcommand_from ${c.name}; and not __fish_seen_subcommand_from ${c.subcommands.join(' ')}`);
      lines.push(`complete -c lockd -n ${none} -a ${fq(c.subcommands.join(' '))}`);
    }
    // After run's options comes a command of its own: offer command names (then files, via -F).
    if (c.takesCommand) lines.push(`complete -c lockd -n ${when} -F -a ${fq('(__fish_complete_command)')}`);
  }
  lines.push('', `# commands: ${names}`, '');
  return lines.join('\n');
}

export async function completionScript(shell: CompletionShell, commands: CommandTable): Promise<string> {
  const specs = await completionSpec(commands);
  return shell === 'bash' ? bashCompletion(specs) : shell === 'zsh' ? zshCompletion(specs) : fishCompletion(specs);
}

export async function completionCommand(args: string[], ctx: CommandContext): Promise<number> {
  const { positionals } = parse(args, COMMON_OPTIONS, true);
  const shell = positionals[0];
  if (positionals.length !== 1 || !(COMPLETION_SHELLS as readonly string[]).includes(shell!)) {
    throw new LockdError('usage', `lockd completion needs one shell: ${COMPLETION_SHELLS.join(', ')}${shell ? `, not ${JSON.stringify(positionals.join(' '))}` : ''}`);
  }
  process.stdout.write(await completionScript(shell as CompletionShell, ctx.commands));
  return EXIT.OK;
}
