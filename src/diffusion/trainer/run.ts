/**
 * A diffusion training run on the shared run loop (run-loop.ts): steps up to the config's total
 * (or `stopAt`), checkpoints every `saveEvery` steps and at the end, a metrics log
 * (`metrics.jsonl`, one JSON object per `logEvery` steps), sample grids
 * (`samples/step-NNNNNN.png`). Progress reaches the caller through callbacks; nothing is printed.
 * A non-finite loss stops the run with a NonFiniteError that names the checkpoint kept on disk.
 */
import { join } from 'node:path';

import { savePng } from '../../data/index.js';
import type { WriteCheckpointOptions } from './checkpoint.js';
import { defaultRunSettings, type RunSettings } from './config.js';
import { runLoop, type RunProgress, runProgress, type TrainerRunOptions } from './run-loop.js';
import type { StepStats, Trainer } from './trainer.js';

export const SAMPLES_DIR = 'samples';

export type Progress = RunProgress<StepStats>;

export interface RunOptions extends TrainerRunOptions<Progress, never, RunSettings> {
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

/** Runs `trainer` from its current step (see the module comment). */
export async function runTraining(trainer: Trainer, opts: RunOptions): Promise<RunResult> {
  const settings: RunSettings = { ...defaultRunSettings, ...opts.settings };
  const { afterStep, onProgress, onSample } = opts;
  let lastLoss: number | null = null;
  const writeSamples = async (step: number): Promise<void> => {
    const images = trainer.previewImages(
      settings.sampleCount,
      settings.sampleSteps,
      settings.sampler,
    );
    const path = join(opts.outDir, SAMPLES_DIR, `step-${String(step).padStart(6, '0')}.png`);
    try {
      await savePng(path, images);
    } finally {
      images.dispose();
    }
    onSample?.({ step, path });
  };
  const r = await runLoop<StepStats, never, RunSettings>(trainer, {
    ...opts,
    settings,
    afterStep: (stats) => {
      afterStep?.(trainer, stats);
      lastLoss = stats.loss;
    },
    averaged: (s) => ({ loss: s.loss }),
    everyStep: async (step) => {
      if (settings.sampleEvery > 0 && step % settings.sampleEvery === 0) await writeSamples(step);
    },
    onProgress: onProgress && ((p) => onProgress(runProgress(p))),
  });
  return { step: r.step, reason: r.reason, checkpoint: r.checkpoint, lastLoss };
}
