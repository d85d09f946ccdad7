/**
 * A text training run: steps up to the config's total (or `stopAt`), a metrics log
 * (`metrics.jsonl`: a line every `logEvery` steps, and one per held-out score), the held-out
 * score every `evalEvery` steps and at the end, checkpoints every `saveEvery` steps and at the end.
 * Progress reaches the caller through callbacks; nothing is printed.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import { findCheckpoint, writeCheckpointDir } from './checkpoint.js';
import { METRICS_FILE, truncateMetrics } from './run.js';
import {
  defaultTextRunSettings,
  type TextCheckpointMeta,
  type TextHeldOut,
  type TextRunSettings,
  type TextStepStats,
  type TextTrainer,
} from './text-trainer.js';

export interface TextProgress extends TextStepStats {
  total: number;
  /** Exponential moving average (α = 0.05, bias-corrected) of the loss. */
  smoothLoss: number;
  itPerSec: number;
  etaSeconds: number;
  elapsedSeconds: number;
}

export interface TextRunOptions {
  outDir: string;
  settings?: Partial<TextRunSettings>;
  /** Stop with a checkpoint once this step is done, keeping the schedule of `config.steps`. */
  stopAt?: number;
  signal?: AbortSignal;
  trainArgs?: string[];
  command?: string;
  onProgress?: (p: TextProgress) => void;
  onEval?: (r: TextHeldOut) => void;
  onCheckpoint?: (c: { step: number; dir: string; seconds: number }) => void;
}

export interface TextRunResult {
  step: number;
  reason: 'done' | 'stopped' | 'aborted';
  checkpoint: string | null;
  heldOut: TextHeldOut | null;
}

/** Runs `trainer` from its current step (see the module comment). */
export async function runTextTraining(
  trainer: TextTrainer,
  opts: TextRunOptions,
): Promise<TextRunResult> {
  const settings: TextRunSettings = { ...defaultTextRunSettings, ...opts.settings };
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
  const meta = (): TextCheckpointMeta => ({
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
    const r = trainer.evaluateHeldOut();
    if (r === null) return;
    await appendFile(metricsPath, `${JSON.stringify({ step: r.step, heldout: r })}\n`);
    opts.onEval?.(r);
  };

  let smooth = 0;
  let weight = 0;
  let window = { loss: 0, steps: 0 };
  const times: number[] = [performance.now()];
  let reason: TextRunResult['reason'] = end === total ? 'done' : 'stopped';
  while (trainer.step < end) {
    if (opts.signal?.aborted === true) {
      reason = 'aborted';
      break;
    }
    const stats = await trainer.trainStep();
    smooth = 0.95 * smooth + 0.05 * stats.loss;
    weight = 0.95 * weight + 0.05;
    window = { loss: window.loss + stats.loss, steps: window.steps + 1 };
    times.push(performance.now());
    if (times.length > 21) times.shift();
    const itPerSec = (1000 * (times.length - 1)) / (times[times.length - 1]! - times[0]!);
    const step = trainer.step;
    opts.onProgress?.({
      ...stats,
      total,
      smoothLoss: smooth / weight,
      itPerSec,
      etaSeconds: (end - step) / itPerSec,
      elapsedSeconds: elapsed(),
    });
    if (step % settings.logEvery === 0 || step === end) {
      const line = {
        step,
        loss: window.loss / window.steps,
        lr: stats.lr,
        grad_norm: stats.gradNorm,
        epoch: stats.epoch,
        it_per_sec: Number(itPerSec.toFixed(3)),
        elapsed_s: Number(elapsed().toFixed(3)),
      };
      await appendFile(metricsPath, `${JSON.stringify(line)}\n`);
      window = { loss: 0, steps: 0 };
    }
    if (settings.evalEvery > 0 && step % settings.evalEvery === 0 && step < end) await evaluate();
    if (settings.saveEvery > 0 && step % settings.saveEvery === 0 && step < end) await save();
  }
  let fresh = false;
  if (reason !== 'aborted' && trainer.heldOut?.step !== trainer.step) {
    await evaluate();
    fresh = trainer.heldOut !== null;
  }
  if (trainer.step !== savedStep || fresh) await save();
  return { step: trainer.step, reason, checkpoint, heldOut: trainer.heldOut };
}
