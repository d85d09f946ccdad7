/**
 * A text training run: steps up to the config's total (or `stopAt`), a metrics log
 * (`metrics.jsonl`: a line every `logEvery` steps, and one per held-out score), the held-out
 * score every `evalEvery` steps and at the end, checkpoints every `saveEvery` steps and at the end.
 * Progress reaches the caller through callbacks; nothing is printed.
 */
import { runLoop } from './run-loop.js';
import {
  defaultTextRunSettings,
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

/** Runs `trainer` from its current step on the shared run loop (see the module comment). */
export async function runTextTraining(
  trainer: TextTrainer,
  opts: TextRunOptions,
): Promise<TextRunResult> {
  const onProgress = opts.onProgress;
  return runLoop<TextStepStats, TextHeldOut, TextRunSettings>(trainer, {
    ...opts,
    settings: { ...defaultTextRunSettings, ...opts.settings },
    averaged: (s) => ({ loss: s.loss }),
    onProgress:
      onProgress &&
      ((p) =>
        onProgress({
          ...p.stats,
          total: p.total,
          smoothLoss: p.smooth.loss!,
          itPerSec: p.itPerSec,
          etaSeconds: p.etaSeconds,
          elapsedSeconds: p.elapsedSeconds,
        })),
  });
}
