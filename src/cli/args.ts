/**
 * Command-line options: each command declares its options once (name, kind, help), and gets a
 * parser and a `--help` text from that one description. Accepts `--name value`, `--name=value`,
 * `--flag` and `--no-flag`; every problem is a UsageError naming the option.
 *
 * Hand-written rather than commander: the declarations are data that other code reads too (the
 * training commands map them onto config keys and compare them with a checkpoint's settings on
 * --resume), and the parser with its typed values and messages is 90 lines; commander would need
 * a translation of every declaration and of its errors into ours, no shorter.
 */

export type OptionKind = 'string' | 'number' | 'int' | 'flag';

export interface OptionSpec {
  name: string;
  kind: OptionKind;
  /** Placeholder in the help text (`--steps N`). */
  arg?: string;
  help: string;
  /** Shown as "(default ...)". */
  default?: string;
  /** Allowed values of a string option. */
  choices?: readonly string[];
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  /** Paragraphs after the option list. */
  notes?: readonly string[];
  options: readonly OptionSpec[];
  /** The names of the arguments that are not options, all required (default: none). */
  positionals?: readonly string[];
}

/** A mistake in how the command was called: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An error whose message says everything: printed without a stack trace, exit code 1. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export type OptionValue = string | number | boolean;

export interface ParsedArgs {
  /** Values of the options given, by name (no defaults filled in). */
  values: Map<string, OptionValue>;
  positionals: string[];
  /** The arguments as given. */
  argv: readonly string[];
  help: boolean;
  verbose: boolean;
}

const COMMON: readonly OptionSpec[] = [
  { name: 'help', kind: 'flag', help: 'show this help' },
  { name: 'verbose', kind: 'flag', help: 'stack traces on errors' },
];

function parseValue(spec: OptionSpec, raw: string): OptionValue {
  const opt = `--${spec.name}`;
  switch (spec.kind) {
    case 'string':
      if (spec.choices !== undefined && !spec.choices.includes(raw)) {
        throw new UsageError(`${opt}: '${raw}' is not one of ${spec.choices.join(', ')}`);
      }
      return raw;
    case 'number': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) {
        throw new UsageError(`${opt} expects a number, got '${raw}'`);
      }
      return v;
    }
    case 'int': {
      const v = Number(raw);
      if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(v)) {
        throw new UsageError(`${opt} expects an integer, got '${raw}'`);
      }
      return v;
    }
    case 'flag':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw new UsageError(`${opt} is a flag (true or false), got '${raw}'`);
    default:
      throw new UsageError(`${opt}: unknown kind ${String(spec.kind satisfies never)}`);
  }
}

/** Parses argv against a command's options. */
export function parseArgs(cmd: CommandSpec, argv: readonly string[]): ParsedArgs {
  const specs = new Map([...cmd.options, ...COMMON].map((o) => [o.name, o]));
  const values = new Map<string, OptionValue>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h') {
      values.set('help', true);
      continue;
    }
    if (!a.startsWith('--') || a === '--') {
      if (a.startsWith('-') && a.length > 1 && a !== '--') {
        throw new UsageError(`unknown option '${a}'`);
      }
      if (a !== '--') positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    let name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    let spec = specs.get(name);
    if (spec === undefined && name.startsWith('no-') && specs.get(name.slice(3))?.kind === 'flag') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      name = name.slice(3);
      values.set(name, false);
      continue;
    }
    if (spec === undefined) {
      const near = [...specs.keys()].filter((k) => k.includes(name) || name.includes(k));
      throw new UsageError(
        `unknown option '--${name}'` + (near.length > 0 ? ` (did you mean --${near[0]}?)` : ''),
      );
    }
    spec = spec!;
    if (spec.kind === 'flag') {
      values.set(name, eq < 0 ? true : parseValue(spec, a.slice(eq + 1)));
      continue;
    }
    let raw: string | undefined;
    if (eq >= 0) raw = a.slice(eq + 1);
    else {
      raw = argv[++i];
      if (raw === undefined)
        throw new UsageError(`--${name} needs a value (${spec.arg ?? spec.kind})`);
    }
    values.set(name, parseValue(spec, raw));
  }
  return {
    values,
    positionals,
    argv: [...argv],
    help: values.get('help') === true,
    verbose: values.get('verbose') === true,
  };
}

/** The `--help` text of a command. */
export function helpText(cmd: CommandSpec): string {
  const rows = [...cmd.options, ...COMMON].map((o) => {
    const left = `  --${o.name}${o.kind === 'flag' ? '' : ` ${o.arg ?? (o.kind === 'string' ? 'S' : 'N')}`}`;
    const extra = [
      o.choices !== undefined && o.arg === undefined ? `one of ${o.choices.join('|')}` : '',
      o.default !== undefined ? `default ${o.default}` : '',
    ].filter((s) => s !== '');
    return [left, `${o.help}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`] as const;
  });
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const lines = rows.map(([l, r]) =>
    l.length + 1 > width ? `${l}\n${' '.repeat(width)}${r}` : `${l.padEnd(width)}${r}`,
  );
  return [
    `usage: ${cmd.usage}`,
    '',
    cmd.summary,
    '',
    'options:',
    ...lines,
    ...(cmd.notes ?? []).flatMap((n) => ['', n]),
  ].join('\n');
}

/** Typed access to parsed values. */
export class Args {
  constructor(readonly parsed: ParsedArgs) {}
  has(name: string): boolean {
    return this.parsed.values.has(name);
  }
  str(name: string): string | undefined {
    const v = this.parsed.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }
  num(name: string): number | undefined {
    const v = this.parsed.values.get(name);
    return typeof v === 'number' ? v : undefined;
  }
  flag(name: string): boolean | undefined {
    const v = this.parsed.values.get(name);
    return typeof v === 'boolean' ? v : undefined;
  }
  required(name: string): string {
    const v = this.str(name);
    if (v === undefined) throw new UsageError(`--${name} is required`);
    return v;
  }
}

/** Quotes an argument for display in a shell command line. */
export function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}
