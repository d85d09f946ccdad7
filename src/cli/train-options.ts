/**
 * What the training commands share (`sumi train-classifier`, `sumi train --task text`,
 * `sumi train-vae`, and in part `sumi train`): the options that set a trainer's config or
 * run-settings key (steps, batch, learning rate and its schedule, weight decay, clipping, seed,
 * the reporting intervals), the run controls (--resume, --stop-at, --backend, --quiet), reading
 * them into config keys, the arguments a checkpoint records, deciding between a new run and the
 * resumption of the checkpoint in --out (the trainer layer's resume.ts, in the options' words),
 * and running the trainer with progress on stderr and Ctrl-C handling (the first stops after the
 * current step with a checkpoint, the second quits).
 */
import { readFileSync } from 'node:fs';

import type { Dataset } from '../data/index.js';
import {
  findResumable,
  loadTrainingData,
  type Resumable,
  resumedSettings,
  TrainRequestError,
} from '../diffusion/index.js';
import type { Args, OptionSpec } from './args.js';
import { UsageError } from './args.js';
import { BACKEND_HELP, EXIT, formatDuration, message } from './common.js';
import { ProgressReporter } from './progress.js';

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

/** The help note of a command whose runs resume bit for bit. */
export const RESUME_NOTE =
  'With --resume the settings come from the checkpoint; options that would change them are\n' +
  'refused (except --steps and the reporting options). N steps in one go and N/2 then --resume\n' +
  'give bit-identical weights on the same backend.';

/** --resume, --stop-at, --backend, --quiet. */
export const RUN_CONTROL_OPTIONS: readonly OptionSpec[] = [
  { name: 'resume', kind: 'flag', help: 'continue the checkpoint in --out up to --steps' },
  {
    name: 'stop-at',
    kind: 'int',
    arg: 'K',
    help: "stop (with a checkpoint) after step K, keeping --steps' schedule",
  },
  { name: 'backend', kind: 'string', arg: 'B', help: BACKEND_HELP, default: 'cpu' },
  { name: 'quiet', kind: 'flag', help: 'no progress output' },
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

/** The note of a resumed run whose step count changed (a constant rate is unaffected). */
export function stepsChangedNote(
  changed: { from: number; to: number } | null,
  lrSchedule: string,
): string | null {
  if (changed === null || lrSchedule === 'constant' || lrSchedule === 'constant_with_warmup') {
    return null;
  }
  return `note: --steps changed from ${changed.from} to ${changed.to}; the ${lrSchedule} learning-rate schedule now spans ${changed.to} steps`;
}

/** What a resumable checkpoint's state holds of the run. */
interface ResumableState<C, R> {
  step: number;
  config: C;
  run?: Partial<R>;
  trainArgs?: string[];
}

/** What a training command runs. */
export interface RunPlan<C, R, St, D> {
  config: C;
  run: R;
  /** The arguments the checkpoints record (those that retrain from scratch). */
  trainArgs: string[];
  /** Lines to print before training. */
  notes: string[];
  /** The checkpoint continued (null: a run from step 0). */
  resumed: Resumable<St> | null;
  /** What the options loaded with the config (the dataset); null when they were not read. */
  data: D | null;
}

export interface RunPlanOptions<C, R, St, D> {
  args: Args;
  out: string;
  /** The arguments a new run records (without options that do not change the training). */
  argv: readonly string[];
  readState: (dir: string) => Promise<St>;
  /** The config keys and run settings the options give. */
  given: Readonly<Record<string, unknown>>;
  run: Partial<R>;
  defaultRun: R;
  /** A new run's config from the options, with what they load (notes: lines to print). */
  fresh: (notes: string[]) => Promise<{ config: C; data: D }> | { config: C; data: D };
  /**
   * On resume: the config keys the options ask for (compared with the checkpoint's) and what
   * they load; null when they give no data (then only `given` is compared).
   */
  asked: () =>
    Promise<{ config: object; data: D | null } | null> | { config: object; data: D | null } | null;
  /** Options that describe the model or data: on resume without data they are refused. */
  modelOptions?: readonly string[];
}

/**
 * A new run from the options, or the resumption of the checkpoint in --out (with --resume), as
 * the trainer layer's resume.ts decides; refusals are UsageErrors in the options' words.
 */
export async function planRun<
  C extends { steps: number; lrSchedule: string },
  R extends object,
  St extends ResumableState<C, R>,
  D,
>(o: RunPlanOptions<C, R, St, D>): Promise<RunPlan<C, R, St, D>> {
  const { args, out } = o;
  const resume = args.flag('resume') === true;
  let resumed: Resumable<St> | null;
  try {
    resumed = await findResumable(out, resume, o.readState);
  } catch (e) {
    if (e instanceof TrainRequestError) {
      throw new UsageError(
        `${out} already holds a checkpoint; pass --resume to continue it or choose another --out`,
      );
    }
    throw new UsageError(message(e));
  }
  if (resumed === null) {
    const notes = resume ? [`no checkpoint in ${out}; starting from step 0`] : [];
    const { config, data } = await o.fresh(notes);
    const run = { ...o.defaultRun, ...o.run };
    return { config, run, trainArgs: recordedArgs(o.argv, config.steps), notes, resumed, data };
  }
  // The same command with --resume: everything it asks for must be what the checkpoint has.
  const asked = await o.asked();
  for (const name of o.modelOptions ?? []) {
    if (asked === null && args.has(name)) {
      throw new UsageError(`--resume: --${name} needs --data (or drop it: the checkpoint has it)`);
    }
  }
  const { state, dir } = resumed;
  let settings;
  try {
    settings = resumedSettings<C, R>(state, {
      config: asked?.config ?? o.given,
      steps: typeof o.given.steps === 'number' ? o.given.steps : undefined,
      run: o.run,
      defaultRun: o.defaultRun,
    });
  } catch (e) {
    if (!(e instanceof TrainRequestError)) throw e;
    const lines = e.differences.map(
      (d) =>
        `${d.key}: checkpoint has ${JSON.stringify(d.checkpoint)}, asked for ${JSON.stringify(d.given)}`,
    );
    throw new UsageError(
      `--resume continues under the checkpoint's settings; these differ: ${lines.join('; ')}`,
    );
  }
  const { config, run } = settings;
  const note = stepsChangedNote(settings.stepsChanged, config.lrSchedule);
  const notes = [
    ...(note !== null ? [note] : []),
    `resuming ${dir} at step ${state.step} of ${config.steps}`,
  ];
  const trainArgs = recordedArgs(state.trainArgs ?? o.argv, config.steps);
  return { config, run, trainArgs, notes, resumed, data: asked?.data ?? null };
}

/** What a training command's run reports at its end. */
interface RunOutcome {
  step: number;
  reason: 'done' | 'stopped' | 'aborted';
  checkpoint: string | null;
}

/** While a training command's trainer runs: where lines go and what stops it. */
export interface TrainingSession {
  /** Prints a line above the progress bar (nothing with --quiet). */
  say: (line: string) => void;
  /** Aborted by Ctrl-C. */
  signal: AbortSignal;
  /** Draws the progress of a step (undefined with --quiet). */
  progress: ((p: Parameters<ProgressReporter['update']>[0]) => void) | undefined;
}

export interface TrainCommandOptions<T> {
  trainer: T;
  out: string;
  quiet: boolean;
  logEvery: number;
  /** The step this run stops after (--stop-at, else the config's total). */
  end: number;
  /** The config's total. */
  steps: number;
  /** Loads the checkpoint continued, before the notes are printed. */
  load?: () => Promise<void>;
  notes: readonly string[];
  /** The line that says what trains, printed before the first step. */
  describe: () => string;
  train: (s: TrainingSession) => Promise<RunOutcome>;
  /** What the last line names as written (default: `checkpoint <dir>`). */
  saved?: (checkpoint: string | null) => string;
  /** The checkpoint already in --out (given to `after` when there is nothing to train). */
  existing: string | null;
  /** Work after training, or when there is nothing to train (an export). */
  after?: (checkpoint: string | null) => Promise<void>;
}

/**
 * Runs a training command's trainer (see TrainCommandOptions): the checkpoint loaded, the notes,
 * "nothing to train" when it is at its end already, else the run with progress on stderr and
 * Ctrl-C handling, and one line with the step reached, the time and what was written. The trainer
 * is disposed at the end. Returns the exit code.
 */
export async function runTrainCommand<T extends { step: number; dispose(): void }>(
  o: TrainCommandOptions<T>,
): Promise<number> {
  const { trainer, out, end } = o;
  const progress = new ProgressReporter({ every: o.logEvery });
  const say = (line: string): void => {
    if (!o.quiet) progress.message(line);
  };
  const interrupt = interruptOnSigint(say);
  try {
    await o.load?.();
    for (const n of o.notes) say(n);
    let checkpoint = o.existing;
    if (trainer.step >= end) {
      console.log(`${out}: already at step ${trainer.step} of ${end}; nothing to train`);
    } else {
      say(o.describe());
      const t0 = performance.now();
      const result = await o.train({
        say,
        signal: interrupt.signal,
        progress: o.quiet ? undefined : (p) => progress.update(p, end),
      });
      progress.finish();
      checkpoint = result.checkpoint;
      const saved = o.saved?.(checkpoint) ?? `checkpoint ${checkpoint ?? '(none)'}`;
      console.log(
        `${result.reason === 'aborted' ? 'interrupted' : 'trained'} to step ${result.step}/${o.steps} ` +
          `in ${formatDuration((performance.now() - t0) / 1000)}; ${saved}`,
      );
      if (result.reason === 'aborted') return EXIT.interrupted;
    }
    await o.after?.(checkpoint);
    return EXIT.ok;
  } finally {
    progress.finish();
    interrupt.dispose();
    trainer.dispose();
  }
}
