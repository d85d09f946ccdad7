/**
 * A classifier training run: steps up to the config's total (or `stopAt`), a metrics log
 * (`metrics.jsonl`: a line every `logEvery` steps, and one per held-out measurement), the held-out
 * accuracy every `evalEvery` steps and at the end, checkpoints every `saveEvery` steps and at the
 * end (the last one carries the held-out accuracy of its step in sumi.json). Progress reaches the
 * caller through callbacks; nothing is printed.
 */
import { type ClassifierRunSettings, defaultClassifierRunSettings } from './classifier-config.js';
import type {
  ClassifierStepStats,
  ClassifierTrainer,
  HeldOutResult,
} from './classifier-trainer.js';
import { runLoop } from './run-loop.js';

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
 * Runs `trainer` from its current step on the shared run loop (run-loop.ts): a metrics line
 * (`metrics.jsonl`) every `logEvery` steps, the held-out accuracy every `evalEvery` steps and at
 * the end of the run, a checkpoint every `saveEvery` steps and at the end. Nothing is printed.
 */
export async function runClassifierTraining(
  trainer: ClassifierTrainer,
  opts: ClassifierRunOptions,
): Promise<ClassifierRunResult> {
  const onProgress = opts.onProgress;
  return runLoop<ClassifierStepStats, HeldOutResult, ClassifierRunSettings>(trainer, {
    ...opts,
    settings: { ...defaultClassifierRunSettings, ...opts.settings },
    averaged: (s) => ({ loss: s.loss, accuracy: s.accuracy }),
    heldOutLine: (r) => ({ heldout: r.scores }),
    onProgress:
      onProgress &&
      ((p) =>
        onProgress({
          ...p.stats,
          total: p.total,
          smoothLoss: p.smooth.loss!,
          smoothAccuracy: p.smooth.accuracy!,
          itPerSec: p.itPerSec,
          etaSeconds: p.etaSeconds,
          elapsedSeconds: p.elapsedSeconds,
        })),
  });
}
