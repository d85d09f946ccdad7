/**
 * The run loop every trainer shares (diffusion, classifier, text, autoencoder): steps up to the
 * config's total (or `stopAt`), a metrics log (`metrics.jsonl`: a line every `logEvery` steps with
 * the window's averages, and one per held-out measurement), the held-out measurement every
 * `evalEvery` steps and at the end, checkpoints every `saveEvery` steps and at the end (the last
 * one carries the held-out result of its own step), and a stop after the current step when the
 * signal aborts. A non-finite loss stops the run with a NonFiniteError that names the checkpoint
 * kept on disk. Progress reaches the caller through callbacks; nothing is printed.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { writeTextAtomic } from '../../nn/models/index.js';
import { NonFiniteError } from '../train-step.js';
import {
  type CheckpointFile,
  findCheckpoint,
  writeCheckpointDir,
  type WriteCheckpointOptions,
} from './checkpoint.js';

export const METRICS_FILE = 'metrics.jsonl';

/** What every trainer's step reports. */
export interface LoopStepStats {
  /** Steps completed. */
  step: number;
  lr: number;
  /** The global gradient norm before clipping (null when clipping is off). */
  gradNorm: number | null;
  /** The decay of a warming-up EMA of the weights, for trainers that report it (`ema_decay`). */
  emaDecay?: number | null;
  epoch: number;
}

/** The reporting settings of a run (they may change on resume). */
export interface LoopSettings {
  /** Checkpoint every this many steps (0: only at the end). */
  saveEvery: number;
  /** Held-out measurement every this many steps (0 or absent: only at the end). */
  evalEvery?: number;
  /** Metrics line every this many steps. */
  logEvery: number;
}

/** What a checkpoint records about the run that wrote it. */
export interface LoopCheckpointMeta<R extends LoopSettings> {
  elapsedSeconds: number;
  run: R;
  trainArgs?: string[];
  /** The command line that trains the model from scratch. */
  command?: string;
}

/**
 * A trainer the loop can run: one step at a time, checkpoint files, and (for trainers with a
 * held-out set) a held-out measurement.
 */
export interface LoopTrainer<S extends LoopStepStats, E, R extends LoopSettings> {
  readonly config: { readonly steps: number };
  /** Optimizer steps completed. */
  readonly step: number;
  /** Seconds spent in earlier runs of this training. */
  readonly elapsedBefore: number;
  /** The last held-out measurement (null before the first, or without a held-out set). */
  readonly heldOut?: (E & { step: number }) | null;
  /** Runs one optimizer step; throws NonFiniteError before a bad update. */
  trainStep(): Promise<S>;
  /** Measures the held-out set (null without one), leaving the training state as it was. */
  evaluateHeldOut?(): Promise<E | null> | E | null;
  checkpointFiles(meta: LoopCheckpointMeta<R>): Promise<CheckpointFile[]>;
  /** Stops helpers the trainer started (worker threads), once the last checkpoint is written. */
  close?(): Promise<void>;
}

/**
 * The counters of a LoopTrainer that a checkpoint's `trainer_state.json` restores: the steps
 * completed, the seconds of earlier runs and the last held-out measurement (an E).
 */
export class TrainerCounters<E> {
  /** Optimizer steps completed. */
  step = 0;
  /** Seconds spent in earlier runs of this training (from the checkpoint). */
  elapsedBefore = 0;
  /** The last held-out measurement. */
  heldOut: E | null = null;

  /** Takes up where a checkpoint's `trainer_state.json` left off. */
  protected resumeCounters(state: {
    readonly step: number;
    readonly elapsedSeconds: number;
    readonly heldOut: E | null;
  }): void {
    this.step = state.step;
    this.elapsedBefore = state.elapsedSeconds;
    this.heldOut = state.heldOut;
  }
}

export interface LoopProgress<S> {
  stats: S;
  total: number;
  /** Exponential moving averages (α = 0.05, bias-corrected) of the averaged values. */
  smooth: Record<string, number>;
  itPerSec: number;
  etaSeconds: number;
  /** Seconds of training so far, earlier runs included. */
  elapsedSeconds: number;
}

/** A run function's options (the loop's, with the trainer's own progress report). */
export interface TrainerRunOptions<P, E, R> {
  outDir: string;
  settings?: Partial<R>;
  /** Stop with a checkpoint once this step is done, keeping the schedule of `config.steps`. */
  stopAt?: number;
  /** Stops after the current step, with a checkpoint. */
  signal?: AbortSignal;
  /** The arguments recorded in the checkpoint (trainer_state.json and sumi.json). */
  trainArgs?: string[];
  /** The command line that trains the model from scratch. */
  command?: string;
  onProgress?: (p: P) => void;
  onEval?: (r: E) => void;
  onCheckpoint?: (c: { step: number; dir: string; seconds: number }) => void;
}

export interface LoopOptions<S extends LoopStepStats, E, R extends LoopSettings> extends Omit<
  TrainerRunOptions<LoopProgress<S>, E, R>,
  'settings'
> {
  settings: R;
  /** How checkpoints are written (tests simulate a crash in the middle of a save). */
  checkpoint?: WriteCheckpointOptions;
  /** The values of a step that a metrics line averages over its window, by key (`loss` first). */
  averaged: (stats: S) => Record<string, number>;
  /** Values of the step a metrics line gives after the averages (e.g. codebook usage). */
  logged?: (stats: S) => Record<string, unknown>;
  /** What a held-out measurement's metrics line holds besides the step (default `heldout: r`). */
  heldOutLine?: (r: E) => Record<string, unknown>;
  /** Called after each step, before anything is logged or saved (tests inject faults here). */
  afterStep?: (stats: S) => void;
  /**
   * Work of each step after its metrics line and before its checkpoint (the diffusion run's
   * sample grids); a NonFiniteError it throws names the checkpoint kept, as a step's does.
   */
  everyStep?: (step: number) => Promise<void>;
}

/** A run function's progress report: the step's stats with the run's figures. */
export type RunProgress<S> = S & {
  total: number;
  /** Exponential moving average of the loss (α = 0.05, bias-corrected). */
  smoothLoss: number;
  /** Steps per second over the last few steps. */
  itPerSec: number;
  etaSeconds: number;
  /** Seconds of training so far, earlier runs included. */
  elapsedSeconds: number;
};

/** The loop's progress report as a run function's (the loop must average `loss`). */
export function runProgress<S>(p: LoopProgress<S>): RunProgress<S> {
  return {
    ...p.stats,
    total: p.total,
    smoothLoss: p.smooth.loss!,
    itPerSec: p.itPerSec,
    etaSeconds: p.etaSeconds,
    elapsedSeconds: p.elapsedSeconds,
  };
}

export interface LoopResult<E> {
  step: number;
  /** 'done': reached config.steps; 'stopped': reached stopAt; 'aborted': by the signal. */
  reason: 'done' | 'stopped' | 'aborted';
  checkpoint: string | null;
  heldOut: E | null;
}

/** Runs `trainer` from its current step (see the module comment). */
export async function runLoop<S extends LoopStepStats, E, R extends LoopSettings>(
  trainer: LoopTrainer<S, E, R>,
  opts: LoopOptions<S, E, R>,
): Promise<LoopResult<E>> {
  const settings = opts.settings;
  const total = trainer.config.steps;
  const end = Math.min(total, opts.stopAt ?? total);
  const out = opts.outDir;
  await mkdir(out, { recursive: true });
  const metricsPath = join(out, METRICS_FILE);
  await truncateMetrics(metricsPath, trainer.step);
  const t0 = performance.now();
  const elapsed = (): number => trainer.elapsedBefore + (performance.now() - t0) / 1000;
  // A checkpoint already in `out` is the one this trainer was loaded from (or made by it).
  let checkpoint = await findCheckpoint(out);
  let savedStep = checkpoint !== null ? trainer.step : -1;
  const noted = (e: unknown): unknown =>
    e instanceof NonFiniteError ? withCheckpointNote(e, checkpoint, savedStep) : e;
  const save = async (): Promise<void> => {
    const start = performance.now();
    const files = await trainer.checkpointFiles({
      elapsedSeconds: elapsed(),
      run: settings,
      trainArgs: opts.trainArgs,
      command: opts.command,
    });
    checkpoint = await writeCheckpointDir(out, files, opts.checkpoint);
    savedStep = trainer.step;
    opts.onCheckpoint?.({
      step: trainer.step,
      dir: checkpoint,
      seconds: (performance.now() - start) / 1000,
    });
  };
  const heldOutLine = opts.heldOutLine ?? ((r: E) => ({ heldout: r }));
  const evaluate = async (): Promise<boolean> => {
    const r = (await trainer.evaluateHeldOut?.()) ?? null;
    if (r === null) return false;
    const line = { step: trainer.step, ...heldOutLine(r) };
    await appendFile(metricsPath, `${JSON.stringify(line)}\n`);
    opts.onEval?.(r);
    return true;
  };

  // Per key: the moving average and its weight (the bias correction).
  const smooth: Record<string, { v: number; w: number }> = {};
  // Sums and counts per key: a value only some steps report (a loss that starts at some step)
  // is averaged over the steps that report it.
  let window: Record<string, { sum: number; steps: number }> = {};
  const times: number[] = [performance.now()];
  let reason: LoopResult<E>['reason'] = end === total ? 'done' : 'stopped';
  while (trainer.step < end) {
    if (opts.signal?.aborted === true) {
      reason = 'aborted';
      break;
    }
    let stats: S;
    try {
      stats = await trainer.trainStep();
      opts.afterStep?.(stats);
    } catch (e) {
      throw noted(e);
    }
    const values = opts.averaged(stats);
    for (const [k, v] of Object.entries(values)) {
      const m = (smooth[k] ??= { v: 0, w: 0 });
      m.v = 0.95 * m.v + 0.05 * v;
      m.w = 0.95 * m.w + 0.05;
      const w = (window[k] ??= { sum: 0, steps: 0 });
      w.sum += v;
      w.steps++;
    }
    times.push(performance.now());
    if (times.length > 21) times.shift();
    const itPerSec = (1000 * (times.length - 1)) / (times[times.length - 1]! - times[0]!);
    const step = trainer.step;
    opts.onProgress?.({
      stats,
      total,
      smooth: Object.fromEntries(Object.entries(smooth).map(([k, m]) => [k, m.v / m.w])),
      itPerSec,
      etaSeconds: (end - step) / itPerSec,
      elapsedSeconds: elapsed(),
    });
    if (step % settings.logEvery === 0 || step === end) {
      const averages = Object.fromEntries(
        Object.entries(window).map(([k, v]) => [k, v.sum / v.steps]),
      );
      const line = {
        step,
        ...averages,
        ...opts.logged?.(stats),
        lr: stats.lr,
        grad_norm: stats.gradNorm,
        ...(stats.emaDecay !== undefined ? { ema_decay: stats.emaDecay } : {}),
        epoch: stats.epoch,
        it_per_sec: Number(itPerSec.toFixed(3)),
        elapsed_s: Number(elapsed().toFixed(3)),
      };
      await appendFile(metricsPath, `${JSON.stringify(line)}\n`);
      window = {};
    }
    const evalEvery = settings.evalEvery ?? 0;
    try {
      await opts.everyStep?.(step);
      if (evalEvery > 0 && step % evalEvery === 0 && step < end) await evaluate();
      if (settings.saveEvery > 0 && step % settings.saveEvery === 0 && step < end) await save();
    } catch (e) {
      throw noted(e);
    }
  }
  try {
    // The final checkpoint carries the held-out result of its own step (skipped when interrupted).
    let fresh = false;
    if (reason !== 'aborted' && trainer.heldOut?.step !== trainer.step) fresh = await evaluate();
    if (trainer.step !== savedStep || fresh) await save();
  } catch (e) {
    throw noted(e);
  } finally {
    await trainer.close?.();
  }
  return { step: trainer.step, reason, checkpoint, heldOut: trainer.heldOut ?? null };
}

/** What a trainer's run function adds to the loop: the values of its metrics lines and its progress report. */
export type RunReport<S extends LoopStepStats, E, R extends LoopSettings, P> = Pick<
  LoopOptions<S, E, R>,
  'averaged' | 'logged' | 'heldOutLine'
> & {
  /** The run's progress report made from the loop's (`runProgress`, or more). */
  progress: (p: LoopProgress<S>) => P;
};

/**
 * Runs `trainer` from its current step on the loop under a run function's options: the settings
 * given over `defaults`, the metrics of `report`, and each progress report of the loop passed to
 * `opts.onProgress` as `report.progress` makes it.
 */
export function runTrainer<S extends LoopStepStats, E, R extends LoopSettings, P>(
  trainer: LoopTrainer<S, E, NoInfer<R>>,
  opts: TrainerRunOptions<P, E, R>,
  defaults: R,
  report: RunReport<S, E, R, P>,
): Promise<LoopResult<E>> {
  const { onProgress } = opts;
  const { progress, ...metrics } = report;
  return runLoop<S, E, R>(trainer, {
    ...opts,
    settings: { ...defaults, ...opts.settings },
    ...metrics,
    onProgress: onProgress && ((p) => onProgress(progress(p))),
  });
}

/** Drops metrics lines of steps after `step` (written by a run that died after its checkpoint). */
export async function truncateMetrics(path: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return;
  }
  const keep = text.split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try {
      const s = (JSON.parse(line) as { step?: unknown }).step;
      return typeof s !== 'number' || s <= step;
    } catch {
      return false; // a line cut short by a kill
    }
  });
  const out = keep.length > 0 ? `${keep.join('\n')}\n` : '';
  if (out !== text) await writeTextAtomic(path, out);
}

/** The error with a note of the checkpoint kept on disk. */
export function withCheckpointNote(
  e: NonFiniteError,
  dir: string | null,
  step: number,
): NonFiniteError {
  const note =
    dir === null
      ? 'no checkpoint had been written yet'
      : `the last good checkpoint (step ${step}) is kept in ${dir}`;
  const err = new NonFiniteError(e.step, e.what, e.value);
  err.message = `training stopped: ${e.message}; ${note}`;
  return err;
}
