/**
 * A text training run on the shared run loop (run-loop.ts): a metrics line (`metrics.jsonl`)
 * every `logEvery` steps, the held-out score every `evalEvery` steps and at the end, checkpoints
 * every `saveEvery` steps and at the end. Progress reaches the caller through callbacks; nothing
 * is printed.
 */
import {
  type LoopResult,
  runLoop,
  type RunProgress,
  runProgress,
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
export async function runTextTraining(
  trainer: TextTrainer,
  opts: TextRunOptions,
): Promise<TextRunResult> {
  const onProgress = opts.onProgress;
  return runLoop<TextStepStats, TextHeldOut, TextRunSettings>(trainer, {
    ...opts,
    settings: { ...defaultTextRunSettings, ...opts.settings },
    averaged: (s) => ({ loss: s.loss }),
    onProgress: onProgress && ((p) => onProgress(runProgress(p))),
  });
}
