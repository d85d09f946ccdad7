/**
 * What the training commands do around their trainer (`sumi train-classifier`, `sumi train --task
 * text`, `sumi train-vae`): decide between a new run and the resumption of the checkpoint in
 * --out (the trainer layer's resume.ts decides; refusals are put in the options' words), then run
 * the trainer with progress on stderr and Ctrl-C handling, and say where it got to.
 */
import {
  findResumable,
  type LoopStepStats,
  type Resumable,
  resumedSettings,
  type RunProgress,
  TrainRequestError,
} from '../diffusion/index.js';
import { type Args, UsageError } from './args.js';
import { EXIT, formatDuration, message } from './common.js';
import { ProgressReporter } from './progress.js';
import { interruptOnSigint, recordedArgs, recordedCommand } from './train-options.js';

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
  /** --stop-at (checked against the config's steps). */
  stopAt: number | undefined;
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
 * the trainer layer's resume.ts decides (see the module comment).
 */
export async function planRun<
  C extends { steps: number; lrSchedule: string },
  R extends object,
  St extends ResumableState<C, R>,
  D,
>(o: RunPlanOptions<C, R, St, D>): Promise<RunPlan<C, R, St, D>> {
  const plan = await settingsOf(o);
  const stopAt = o.args.num('stop-at');
  const steps = plan.config.steps;
  if (stopAt !== undefined && (stopAt < 1 || stopAt > steps)) {
    throw new UsageError(`--stop-at must be in 1..${steps}`);
  }
  return { ...plan, stopAt };
}

async function settingsOf<
  C extends { steps: number; lrSchedule: string },
  R extends object,
  St extends ResumableState<C, R>,
  D,
>(o: RunPlanOptions<C, R, St, D>): Promise<Omit<RunPlan<C, R, St, D>, 'stopAt'>> {
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

/** The options every run function takes from a training command. */
export interface CommandRunOptions<R> {
  outDir: string;
  settings: R;
  stopAt: number | undefined;
  signal: AbortSignal;
  trainArgs: string[];
  /** `sumi <command> <trainArgs>`, shell-quoted. */
  command: string;
  onProgress:
    | ((p: RunProgress<LoopStepStats & { loss: number; gradNorm: number | null }>) => void)
    | undefined;
  onCheckpoint: (c: { step: number; dir: string; seconds: number }) => void;
}

/** What a training command's run reports at its end. */
interface RunOutcome {
  step: number;
  reason: 'done' | 'stopped' | 'aborted';
  checkpoint: string | null;
}

/** A trainer a training command runs. */
interface CommandTrainer<St> {
  readonly step: number;
  loadCheckpoint(dir: string, state: St): Promise<void>;
  dispose(): void;
}

export interface TrainCommandOptions<C, R, St> {
  args: Args;
  out: string;
  /** The command's name in the recorded command line (`train-vae`). */
  command: string;
  plan: RunPlan<C, R, St, unknown>;
  trainer: CommandTrainer<St>;
  /** The line that says what trains, printed before the first step. */
  describe: () => string;
  /** Runs the trainer (`say` prints a line above the progress bar). */
  train: (opts: CommandRunOptions<R>, say: (line: string) => void) => Promise<RunOutcome>;
  /** What the last line names as written (default: `checkpoint <dir>`). */
  saved?: (checkpoint: string | null) => string;
  /**
   * Work after training, or when there is nothing to train (an export), given the last
   * checkpoint.
   */
  after?: (checkpoint: string | null) => Promise<void>;
}

/**
 * Runs a training command's trainer: the checkpoint continued loaded, the plan's notes, "nothing
 * to train" when it is at its end already, else the run with progress on stderr (none with
 * --quiet) and Ctrl-C handling, and one line with the step reached, the time and what was
 * written. The trainer is disposed at the end. Returns the exit code.
 */
export async function runTrainCommand<
  C extends { steps: number },
  R extends { logEvery: number },
  St,
>(o: TrainCommandOptions<C, R, St>): Promise<number> {
  const { trainer, out, plan } = o;
  const { steps } = plan.config;
  const end = plan.stopAt ?? steps;
  const quiet = o.args.flag('quiet') === true;
  const progress = new ProgressReporter({ every: plan.run.logEvery });
  const say = (line: string): void => {
    if (!quiet) progress.message(line);
  };
  const interrupt = interruptOnSigint(say);
  try {
    const resumed = plan.resumed;
    if (resumed !== null) await trainer.loadCheckpoint(resumed.dir, resumed.state);
    for (const n of plan.notes) say(n);
    let checkpoint = resumed?.dir ?? null;
    if (trainer.step >= end) {
      console.log(`${out}: already at step ${trainer.step} of ${end}; nothing to train`);
    } else {
      say(o.describe());
      const t0 = performance.now();
      const result = await o.train(
        {
          outDir: out,
          settings: plan.run,
          stopAt: plan.stopAt,
          signal: interrupt.signal,
          trainArgs: plan.trainArgs,
          command: recordedCommand(o.command, plan.trainArgs),
          onProgress: quiet
            ? undefined
            : (p) => progress.update({ ...p, emaDecay: p.emaDecay ?? null }, end),
          onCheckpoint: (c) =>
            say(`checkpoint: step ${c.step} -> ${c.dir} (${c.seconds.toFixed(2)}s)`),
        },
        say,
      );
      progress.finish();
      checkpoint = result.checkpoint;
      const saved = o.saved?.(checkpoint) ?? `checkpoint ${checkpoint ?? '(none)'}`;
      console.log(
        `${result.reason === 'aborted' ? 'interrupted' : 'trained'} to step ${result.step}/${steps} ` +
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
