/**
 * An autoencoder training run on the shared run loop (run-loop.ts): a metrics line
 * (`metrics.jsonl`) every `logEvery` steps with the window's loss terms (rec, kl or vq, and the
 * adversarial g_loss and d_loss once the discriminator is on) and, for a VQModel, the codebook
 * usage and perplexity of the step; the held-out PSNR / SSIM every `evalEvery` steps and at the
 * end; checkpoints every `saveEvery` steps and at the end. Progress reaches the caller through
 * callbacks; nothing is printed.
 */
import {
  type LoopResult,
  type RunProgress,
  runProgress,
  runTrainer,
  type TrainerRunOptions,
} from './run-loop.js';
import { defaultVaeRunSettings, type VaeRunSettings } from './vae-config.js';
import type { VaeHeldOut, VaeStepStats, VaeTrainer } from './vae-trainer.js';

export type VaeProgress = RunProgress<VaeStepStats>;

export type VaeRunOptions = TrainerRunOptions<VaeProgress, VaeHeldOut, VaeRunSettings>;

export type VaeRunResult = LoopResult<VaeHeldOut>;

/** Runs `trainer` from its current step (see the module comment). */
export function runVaeTraining(trainer: VaeTrainer, opts: VaeRunOptions): Promise<VaeRunResult> {
  return runTrainer(trainer, opts, defaultVaeRunSettings, {
    averaged: (s) => ({
      loss: s.loss,
      rec: s.rec,
      ...(s.kl !== null ? { kl: s.kl } : {}),
      ...(s.vq !== null ? { vq: s.vq } : {}),
      ...(s.gLoss !== null ? { g_loss: s.gLoss } : {}),
      ...(s.dLoss !== null ? { d_loss: s.dLoss } : {}),
    }),
    logged:
      trainer.config.kind === 'vq'
        ? (s) => ({ codebook_usage: s.codebookUsage, perplexity: s.perplexity })
        : undefined,
    progress: runProgress,
  });
}
