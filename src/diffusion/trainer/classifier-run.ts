/**
 * A classifier training run: steps up to the config's total (or `stopAt`), a metrics log
 * (`metrics.jsonl`: a line every `logEvery` steps, and one per held-out measurement), the held-out
 * accuracy every `evalEvery` steps and at the end, checkpoints every `saveEvery` steps and at the
 * end (the last one carries the held-out accuracy of its step in sumi.json). Progress reaches the
 * caller through callbacks; nothing is printed.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { findCheckpoint, writeCheckpointDir } from './checkpoint.js';
import { type ClassifierRunSettings, defaultClassifierRunSettings } from './classifier-config.js';
import type {
  ClassifierCheckpointMeta,
  ClassifierStepStats,
  ClassifierTrainer,
  HeldOutResult,
} from './classifier-trainer.js';
import { METRICS_FILE, truncateMetrics } from './run.js';

export interface ClassifierProgress extends ClassifierStepStats {
  total: number;
  /** Exponential moving averages (α = 0.05, bias-corrected) of the loss and the accuracy. */
  smoothLoss: number;
  smoothAccuracy: number;
  itPerSec: number;
  etaSeconds: number;
  elapsedSeconds: number;
}

export interface ClassifierRunOptions {
  outDir: string;
  settings?: Partial<ClassifierRunSettings>;
  /** Stop with a checkpoint once this step is done, keeping the schedule of `config.steps`. */
  stopAt?: number;
  /** Stops after the current step, with a checkpoint. */
  signal?: AbortSignal;
  trainArgs?: string[];
  command?: string;
  onProgress?: (p: ClassifierProgress) => void;
  onEval?: (r: HeldOutResult) => void;
  onCheckpoint?: (c: { step: number; dir: string; seconds: number }) => void;
}

export interface ClassifierRunResult {
  step: number;
  reason: 'done' | 'stopped' | 'aborted';
  checkpoint: string | null;
  heldOut: HeldOutResult | null;
}

/**
 * Runs `trainer` from its current step: a metrics line (`metrics.jsonl`) every `logEvery` steps,
 * the held-out accuracy every `evalEvery` steps and at the end of the run, a checkpoint every
 * `saveEvery` steps and at the end. Nothing is printed.
 */
export async function runClassifierTraining(
  trainer: ClassifierTrainer,
  opts: ClassifierRunOptions,
): Promise<ClassifierRunResult> {
  const settings: ClassifierRunSettings = { ...defaultClassifierRunSettings, ...opts.settings };
  const total = trainer.config.steps;
  const end = Math.min(total, opts.stopAt ?? total);
  const out = opts.outDir;
  await mkdir(out, { recursive: true });
  const metricsPath = join(out, METRICS_FILE);
  await truncateMetrics(metricsPath, trainer.step);
  const t0 = performance.now();
  const elapsed = (): number => trainer.elapsedBefore + (performance.now() - t0) / 1000;
  let checkpoint = await findCheckpoint(out);
  let savedStep = checkpoint !== null ? trainer.step : -1;
  const meta = (): ClassifierCheckpointMeta => ({
    elapsedSeconds: elapsed(),
    run: settings,
    trainArgs: opts.trainArgs,
    command: opts.command,
  });
  const save = async (): Promise<void> => {
    const start = performance.now();
    checkpoint = await writeCheckpointDir(out, await trainer.checkpointFiles(meta()));
    savedStep = trainer.step;
    opts.onCheckpoint?.({
      step: trainer.step,
      dir: checkpoint,
      seconds: (performance.now() - start) / 1000,
    });
  };
  const evaluate = async (): Promise<void> => {
    const r = await trainer.evaluateHeldOut();
    if (r === null) return;
    const line = { step: r.step, heldout: r.scores };
    await appendFile(metricsPath, `${JSON.stringify(line)}\n`);
    opts.onEval?.(r);
  };

  let smooth = 0;
  let smoothAcc = 0;
  let weight = 0;
  let window = { loss: 0, accuracy: 0, steps: 0 };
  const times: number[] = [performance.now()];
  let reason: ClassifierRunResult['reason'] = end === total ? 'done' : 'stopped';
  while (trainer.step < end) {
    if (opts.signal?.aborted === true) {
      reason = 'aborted';
      break;
    }
    const stats = await trainer.trainStep();
    smooth = 0.95 * smooth + 0.05 * stats.loss;
    smoothAcc = 0.95 * smoothAcc + 0.05 * stats.accuracy;
    weight = 0.95 * weight + 0.05;
    window = {
      loss: window.loss + stats.loss,
      accuracy: window.accuracy + stats.accuracy,
      steps: window.steps + 1,
    };
    times.push(performance.now());
    if (times.length > 21) times.shift();
    const itPerSec = (1000 * (times.length - 1)) / (times[times.length - 1]! - times[0]!);
    const step = trainer.step;
    opts.onProgress?.({
      ...stats,
      total,
      smoothLoss: smooth / weight,
      smoothAccuracy: smoothAcc / weight,
      itPerSec,
      etaSeconds: (end - step) / itPerSec,
      elapsedSeconds: elapsed(),
    });
    if (step % settings.logEvery === 0 || step === end) {
      const line = {
        step,
        loss: window.loss / window.steps,
        accuracy: window.accuracy / window.steps,
        lr: stats.lr,
        grad_norm: stats.gradNorm,
        epoch: stats.epoch,
        it_per_sec: Number(itPerSec.toFixed(3)),
        elapsed_s: Number(elapsed().toFixed(3)),
      };
      await appendFile(metricsPath, `${JSON.stringify(line)}\n`);
      window = { loss: 0, accuracy: 0, steps: 0 };
    }
    if (settings.evalEvery > 0 && step % settings.evalEvery === 0 && step < end) await evaluate();
    if (settings.saveEvery > 0 && step % settings.saveEvery === 0 && step < end) await save();
  }
  // The final checkpoint carries the held-out score of its own step (skipped when interrupted).
  let fresh = false;
  if (
    reason !== 'aborted' &&
    trainer.heldOutSet !== null &&
    trainer.heldOut?.step !== trainer.step
  ) {
    await evaluate();
    fresh = true;
  }
  if (trainer.step !== savedStep || fresh) await save();
  return { step: trainer.step, reason, checkpoint, heldOut: trainer.heldOut };
}
