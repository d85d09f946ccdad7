/**
 * The options the training commands share (`sumi train-classifier`, `sumi train --task text`,
 * `sumi train-vae`, and in part `sumi train`): those that set a trainer's config or run-settings
 * key (steps, batch, learning rate and its schedule, weight decay, clipping, seed, the reporting
 * intervals) with the command's defaults, the run controls (--resume, --stop-at, --backend,
 * --quiet), reading them into config keys, the arguments a checkpoint records, and Ctrl-C
 * handling (the first stops after the current step with a checkpoint, the second quits).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

import type { Dataset } from '../data/index.js';
import { loadTrainingData } from '../diffusion/index.js';
import type { Args, OptionSpec } from './args.js';
import { shellQuote, UsageError } from './args.js';
import { BACKEND_OPTION, EXIT, message } from './common.js';

/** An option that sets a config or run-settings key directly (0 means "off" for nullable ones). */
export interface KeyedOption<K extends string = string> extends OptionSpec {
  key: K;
  zeroIsNull?: boolean;
}

const SHARED = {
  steps: { kind: 'int', key: 'steps', help: 'total optimizer steps' },
  batch: { kind: 'int', arg: 'B', key: 'batchSize', help: 'batch size' },
  lr: { kind: 'number', arg: 'LR', key: 'lr', help: 'peak learning rate (AdamW)' },
  'lr-schedule': {
    kind: 'string',
    arg: 'NAME',
    key: 'lrSchedule',
    choices: ['cosine', 'constant', 'constant_with_warmup', 'linear'],
    help: 'learning-rate schedule: cosine, constant, constant_with_warmup, linear',
  },
  warmup: { kind: 'int', key: 'warmupSteps', help: 'linear warmup steps' },
  'min-lr': { kind: 'number', arg: 'LR', key: 'minLr', help: 'floor of the decay' },
  'weight-decay': { kind: 'number', arg: 'W', key: 'weightDecay', help: 'AdamW weight decay' },
  'grad-clip': {
    kind: 'number',
    arg: 'G',
    key: 'maxGradNorm',
    zeroIsNull: true,
    help: 'clip the global gradient norm at G (0: off)',
  },
  flip: { kind: 'flag', key: 'flip', help: 'random horizontal flips' },
  seed: { kind: 'int', arg: 'S', key: 'seed', help: 'seed of every random stream' },
  'save-every': {
    kind: 'int',
    key: 'saveEvery',
    help: 'checkpoint every N steps (0: only at the end)',
  },
  'eval-every': {
    kind: 'int',
    key: 'evalEvery',
    help: 'held-out score every N steps (0: only at the end)',
  },
  'log-every': { kind: 'int', key: 'logEvery', help: 'metrics line every N steps' },
} as const satisfies Record<string, Omit<KeyedOption, 'name'>>;

export type SharedOptionName = keyof typeof SHARED;

/** A default as help shows it: a number in the shorter of its forms (3e-4, 0.05); null and false: none. */
export function defaultText(v: unknown): string | undefined {
  if (v === null || v === undefined || v === false) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v !== 'number') return JSON.stringify(v);
  const plain = String(v);
  const exponent = v.toExponential();
  return exponent.length < plain.length ? exponent : plain;
}

/**
 * The shared options `names`, in this order, each showing the default its key has in `defaults`
 * (the command's default config and run settings), with the command's own help where `help`
 * gives one.
 */
export function trainOptions<K extends string>(
  names: readonly SharedOptionName[],
  defaults: object,
  help: Partial<Record<SharedOptionName, string>> = {},
): KeyedOption<K>[] {
  return names.map((name) => {
    const base = SHARED[name] as Omit<KeyedOption<K>, 'name'>;
    const shown = defaultText((defaults as Record<string, unknown>)[base.key]);
    return {
      name,
      ...base,
      ...(help[name] !== undefined ? { help: help[name] } : {}),
      ...(shown !== undefined ? { default: shown } : {}),
    };
  });
}

/** The keys of the run settings (they may change on resume). */
export const RUN_KEYS: readonly string[] = ['saveEvery', 'evalEvery', 'logEvery'];

/** --image-size and --channels of the images loaded. */
export const IMAGE_OPTIONS: readonly OptionSpec[] = [
  { name: 'image-size', kind: 'int', arg: 'S', help: 'resize images to S×S' },
  { name: 'channels', kind: 'int', arg: 'C', help: '1 or 3' },
];

/** --channels (else `fallback`): 1 or 3. */
export function channelsOption(args: Args, fallback?: 1 | 3): 1 | 3 | undefined {
  const channels = args.num('channels') ?? fallback;
  if (channels !== undefined && channels !== 1 && channels !== 3) {
    throw new UsageError(`--channels must be 1 or 3, got ${channels}`);
  }
  return channels;
}

/** The help note of a command whose runs resume bit for bit. */
export const RESUME_NOTE =
  'With --resume the settings come from the checkpoint; options that would change them are\n' +
  'refused (except --steps and the reporting options). N steps in one go and N/2 then --resume\n' +
  'give bit-identical weights on the same backend.';

export const RESUME_OPTION: OptionSpec = {
  name: 'resume',
  kind: 'flag',
  help: 'continue the checkpoint in --out up to --steps',
};
export const STOP_AT_OPTION: OptionSpec = {
  name: 'stop-at',
  kind: 'int',
  arg: 'K',
  help: "stop (with a checkpoint) after step K, keeping --steps' schedule",
};
export const QUIET_OPTION: OptionSpec = { name: 'quiet', kind: 'flag', help: 'no progress output' };

/** --resume, --stop-at, --backend, --quiet. */
export const RUN_CONTROL_OPTIONS: readonly OptionSpec[] = [
  RESUME_OPTION,
  STOP_AT_OPTION,
  BACKEND_OPTION,
  QUIET_OPTION,
];

/** The value a keyed option gives its key (null for 0 when it means "off"). */
export function keyedValue(o: KeyedOption, args: Args): unknown {
  const v =
    o.kind === 'flag'
      ? args.flag(o.name)
      : o.kind === 'string'
        ? args.str(o.name)
        : args.num(o.name);
  return o.zeroIsNull === true && v === 0 ? null : v;
}

/** The values of the keyed options given on the command line, by key. */
export function keyedValues<K extends string>(
  keyed: readonly KeyedOption<K>[],
  args: Args,
): Partial<Record<K, unknown>> {
  const out: Partial<Record<K, unknown>> = {};
  for (const o of keyed) if (args.has(o.name)) out[o.key] = keyedValue(o, args);
  return out;
}

/** Splits option values into config keys and run-settings keys. */
export function splitRunValues(values: Readonly<Record<string, unknown>>): {
  config: Record<string, unknown>;
  run: Record<string, unknown>;
} {
  const config: Record<string, unknown> = {};
  const run: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) (RUN_KEYS.includes(k) ? run : config)[k] = v;
  return { config, run };
}

/** Runs fn; any error it throws is a mistake in the input (exit code 2). */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError(message(e));
  }
}

/** The images of --data (a folder's read now), any problem with them a usage error. */
export function loadData(spec: string, size?: number, channels?: 1 | 3): Dataset {
  return asUsage(() => loadTrainingData(spec, size, channels));
}

/** The --export folder of a run (undefined without it); one that is not empty is refused. */
export function exportFolder(args: Args): string | undefined {
  const dir = args.str('export');
  if (dir !== undefined && existsSync(dir) && readdirSync(dir).length > 0) {
    throw new UsageError(`--export: ${dir} is not empty`);
  }
  return dir;
}

/** A JSON object from a file named by an option (`what`, e.g. '--config'); else a UsageError. */
export function readJsonOption(path: string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`${what} ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new UsageError(`${what} ${path}: expected a JSON object`);
  }
  return json as Record<string, unknown>;
}

/** The arguments that retrain from scratch: these minus run-control options, with --steps N. */
export function recordedArgs(argv: readonly string[], steps: number): string[] {
  const drop = new Set(['--resume', '--verbose', '--quiet', '--no-resume']);
  const dropWithValue = new Set(['--stop-at', '--backend', '--steps']);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.split('=')[0]!;
    if (drop.has(name)) continue;
    if (dropWithValue.has(name)) {
      if (!a.includes('=')) i++;
      continue;
    }
    out.push(a);
  }
  return [...out, '--steps', String(steps)];
}

/** The command line a checkpoint records: `sumi <command> <trainArgs>`, shell-quoted. */
export function recordedCommand(command: string, trainArgs: readonly string[]): string {
  return ['sumi', command, ...trainArgs].map(shellQuote).join(' ');
}

/** argv without the given options and their values (options that do not change the training). */
export function withoutOptions(argv: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]!.split('=')[0]!;
    if (names.includes(name)) {
      if (!argv[i]!.includes('=')) i++;
      continue;
    }
    out.push(argv[i]!);
  }
  return out;
}

/**
 * Ctrl-C while training: the first aborts the returned signal (the run saves a checkpoint after
 * the current step), the second exits at once. `dispose` removes the handler.
 */
export function interruptOnSigint(say: (line: string) => void): {
  signal: AbortSignal;
  dispose: () => void;
} {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    say('interrupted: saving a checkpoint after this step (Ctrl-C again to quit now)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}
