/** The shape of a `lockd` subcommand in the registry; a type-only module so commands can take the table as input. */
export interface CommandContext {
  /** The whole registry, for commands about commands (`lockd completion`), passed in rather than imported. */
  commands: CommandTable;
}

export type CommandFn = (args: string[], ctx: CommandContext) => Promise<number>;

export type Command = { load: () => Promise<CommandFn>; help: () => Promise<string>; summary: string };

export type CommandTable = Record<string, Command>;
