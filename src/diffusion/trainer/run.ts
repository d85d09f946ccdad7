/**
 * A training run: steps up to the config's total (or `stopAt`), checkpoints every `saveEvery`
 * steps and at the end, a metrics log (`metrics.jsonl`, one JSON object per `logEvery` steps),
 * sample grids (`samples/step-NNNNNN.png`). Progress reaches the caller through callbacks; nothing
 * is printed. A non-finite loss stops the run with a NonFiniteError that names the checkpoint
 * kept on disk.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { savePng } from '../../data/index.js';
import { writeTextAtomic } from '../../nn/models/index.js';
import { findCheckpoint, writeCheckpointDir, type WriteCheckpointOptions } from './checkpoint.js';
import { defaultRunSettings, type RunSettings } from './config.js';
import { NonFiniteError, type StepStats, type Trainer } from './trainer.js';

export const METRICS_FILE = 'metrics.jsonl';
export const SAMPLES_DIR = 'samples';

export interface Progress extends StepStats {
  total: number;
  /** Exponential moving average of the loss (α = 0.05, bias-corrected). */
  smoothLoss: number;
  /** Steps per second over the last few steps. */
  itPerSec: number;
  etaSeconds: number;
  /** Seconds of training so far, earlier runs included. */
  elapsedSeconds: number;
}

export interface RunOptions {
  outDir: string;
  settings?: Partial<RunSettings>;
  /** Stop with a checkpoint once this step is done, keeping the schedule of `config.steps`. */
  stopAt?: number;
  /** Stops after the current step, with a checkpoint. */
  signal?: AbortSignal;
  /** `sumi train` arguments recorded in the checkpoint (trainer_state.json and sumi.json). */
  trainArgs?: string[];
  onProgress?: (p: Progress) => void;
  onCheckpoint?: (c: { step: number; dir: string; seconds: number }) => void;
  onSample?: (s: { step: number; path: string }) => void;
  /** Called after each step, before saving and sampling (inspection; tests inject faults here). */
  afterStep?: (trainer: Trainer, stats: StepStats) => void;
  checkpoint?: WriteCheckpointOptions;
}

export interface RunResult {
  step: number;
  /** 'done': reached config.steps; 'stopped': reached stopAt; 'aborted': by the signal. */
  reason: 'done' | 'stopped' | 'aborted';
  checkpoint: string | null;
  lastLoss: number | null;
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

/** Runs `trainer` from its current step (see the module comment). */
export async function runTraining(trainer: Trainer, opts: RunOptions): Promise<RunResult> {
  const settings: RunSettings = { ...defaultRunSettings, ...opts.settings };
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
  const save = async (): Promise<void> => {
    const start = performance.now();
    const files = await trainer.checkpointFiles({
      trainArgs: opts.trainArgs,
      elapsedSeconds: elapsed(),
      run: settings,
    });
    checkpoint = await writeCheckpointDir(out, files, opts.checkpoint);
    savedStep = trainer.step;
    opts.onCheckpoint?.({
      step: trainer.step,
      dir: checkpoint,
      seconds: (performance.now() - start) / 1000,
    });
  };
  const writeSamples = async (): Promise<void> => {
    const images = trainer.previewImages(
      settings.sampleCount,
      settings.sampleSteps,
      settings.sampler,
    );
    const path = join(out, SAMPLES_DIR, `step-${String(trainer.step).padStart(6, '0')}.png`);
    try {
      await savePng(path, images);
    } finally {
      images.dispose();
    }
    opts.onSample?.({ step: trainer.step, path });
  };

  let smooth = 0;
  let smoothWeight = 0;
  let windowLoss = 0;
  let windowSteps = 0;
  const times: number[] = [performance.now()];
  let lastLoss: number | null = null;
  let reason: RunResult['reason'] = end === total ? 'done' : 'stopped';
  while (trainer.step < end) {
    if (opts.signal?.aborted === true) {
      reason = 'aborted';
      break;
    }
    let stats: StepStats;
    try {
      stats = await trainer.trainStep();
      opts.afterStep?.(trainer, stats);
    } catch (e) {
      throw e instanceof NonFiniteError ? withCheckpointNote(e, checkpoint, savedStep) : e;
    }
    lastLoss = stats.loss;
    smooth = 0.95 * smooth + 0.05 * stats.loss;
    smoothWeight = 0.95 * smoothWeight + 0.05;
    windowLoss += stats.loss;
    windowSteps++;
    times.push(performance.now());
    if (times.length > 21) times.shift();
    const itPerSec = (1000 * (times.length - 1)) / (times[times.length - 1]! - times[0]!);
    const step = trainer.step;
    opts.onProgress?.({
      ...stats,
      total,
      smoothLoss: smooth / smoothWeight,
      itPerSec,
      etaSeconds: (end - step) / itPerSec,
      elapsedSeconds: elapsed(),
    });
    if (step % settings.logEvery === 0 || step === end) {
      const line = {
        step,
        loss: windowLoss / windowSteps,
        lr: stats.lr,
        grad_norm: stats.gradNorm,
        ema_decay: stats.emaDecay,
        epoch: stats.epoch,
        it_per_sec: Number(itPerSec.toFixed(3)),
        elapsed_s: Number(elapsed().toFixed(3)),
      };
      await appendFile(metricsPath, `${JSON.stringify(line)}\n`);
      windowLoss = 0;
      windowSteps = 0;
    }
    try {
      if (settings.sampleEvery > 0 && step % settings.sampleEvery === 0) await writeSamples();
      if (settings.saveEvery > 0 && step % settings.saveEvery === 0 && step < end) await save();
    } catch (e) {
      throw e instanceof NonFiniteError ? withCheckpointNote(e, checkpoint, savedStep) : e;
    }
  }
  try {
    if (trainer.step !== savedStep) await save();
  } catch (e) {
    throw e instanceof NonFiniteError ? withCheckpointNote(e, checkpoint, savedStep) : e;
  } finally {
    await trainer.close();
  }
  return { step: trainer.step, reason, checkpoint, lastLoss };
}

function withCheckpointNote(e: NonFiniteError, dir: string | null, step: number): NonFiniteError {
  const note =
    dir === null
      ? 'no checkpoint had been written yet'
      : `the last good checkpoint (step ${step}) is kept in ${dir}`;
  const err = new NonFiniteError(e.step, e.what, e.value);
  err.message = `training stopped: ${e.message}; ${note}`;
  return err;
}
