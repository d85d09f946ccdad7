/**
 * A classifier training run on the shared run loop (run-loop.ts): a metrics line
 * (`metrics.jsonl`) every `logEvery` steps with the window's loss and accuracy, the held-out
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
import {
  type LoopResult,
  type RunProgress,
  runProgress,
  runTrainer,
  type TrainerRunOptions,
} from './run-loop.js';

export type ClassifierProgress = RunProgress<ClassifierStepStats> & {
  /** Exponential moving average of the accuracy (α = 0.05, bias-corrected). */
  smoothAccuracy: number;
};

export type ClassifierRunOptions = TrainerRunOptions<
  ClassifierProgress,
  HeldOutResult,
  ClassifierRunSettings
>;

export type ClassifierRunResult = LoopResult<HeldOutResult>;

/** Runs `trainer` from its current step (see the module comment). */
export function runClassifierTraining(
  trainer: ClassifierTrainer,
  opts: ClassifierRunOptions,
): Promise<ClassifierRunResult> {
  return runTrainer(trainer, opts, defaultClassifierRunSettings, {
    averaged: (s) => ({ loss: s.loss, accuracy: s.accuracy }),
    heldOutLine: (r) => ({ heldout: r.scores }),
    progress: (p) => ({ ...runProgress(p), smoothAccuracy: p.smooth.accuracy! }),
  });
}
