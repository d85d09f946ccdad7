/**
 * A text training run on the shared run loop (run-loop.ts): a metrics line (`metrics.jsonl`)
 * every `logEvery` steps, the held-out score every `evalEvery` steps and at the end, checkpoints
 * every `saveEvery` steps and at the end. Progress reaches the caller through callbacks; nothing
 * is printed.
 */
import {
  type LoopResult,
  type RunProgress,
  runProgress,
  runTrainer,
  type TrainerRunOptions,
} from './run-loop.js';
import {
  defaultTextRunSettings,
  type TextHeldOut,
  type TextRunSettings,
  type TextStepStats,
  type TextTrainer,
} from './text-trainer.js';

export type TextProgress = RunProgress<TextStepStats>;

export type TextRunOptions = TrainerRunOptions<TextProgress, TextHeldOut, TextRunSettings>;

export type TextRunResult = LoopResult<TextHeldOut>;

/** Runs `trainer` from its current step (see the module comment). */
export function runTextTraining(
  trainer: TextTrainer,
  opts: TextRunOptions,
): Promise<TextRunResult> {
  return runTrainer(trainer, opts, defaultTextRunSettings, {
    averaged: (s) => ({ loss: s.loss }),
    progress: runProgress,
  });
}
