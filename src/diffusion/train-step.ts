/**
 * One training step of a denoiser, browser-safe: the pieces the Trainer's step is made of (its
 * draws of t and ε, the weighted loss of a batch) and `denoiserTrainStep`, which runs them on a
 * batch the caller holds, without the Trainer's data loader, checkpoints or worker threads (the
 * playground trains in a Web Worker with it).
 *
 * Step s:  t_b = ⌊u_b T⌋ with u from stream (seed, 'timesteps', s);  ε from stream (seed, 'noise', s);
 *          x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε;  L = the training loss of the model's output at (x_t, t);
 *          backward; clip the global gradient norm; the optimizer's step.
 */
import { concat, cpuBackend, randn, rand, reshape, type Tensor, tidy } from '../engine/index.js';
import { clipGradNorm, type Optimizer, type ParamsInput } from '../nn/optim.js';
import type { Conditioning, Denoiser } from '../nn/models/index.js';
import { addNoise, type PredictionType } from './forward.js';
import { trainingLoss } from './losses.js';
import type { NoiseSchedule } from './schedule.js';
import { streamSeed } from './trainer/streams.js';
import type { ModelVarType } from './vlb.js';

/** The loss, a gradient norm or the weights became NaN or infinite. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
  constructor(
    /** The step (0-based) whose computation produced it. */
    readonly step: number,
    readonly what: string,
    readonly value: number,
  ) {
    super(`${what} is ${value} at step ${step + 1}`);
  }
}

/**
 * Throws a NonFiniteError for the first of a step's values (by name, in order; null: not
 * measured) that is NaN or infinite, after `drop` (which drops the step's gradients, so that no
 * update follows from them).
 */
export function throwIfNonFinite(
  step: number,
  values: Readonly<Record<string, number | null>>,
  drop: () => void,
): void {
  const bad = Object.entries(values).find(([, v]) => v !== null && !Number.isFinite(v));
  if (bad === undefined) return;
  drop();
  throw new NonFiniteError(step, bad[0], bad[1]!);
}

/**
 * The end of a trainer's step: throwIfNonFinite over `values`, then the optimizer's update and
 * the gradients cleared for the next step.
 */
export function updateIfFinite(
  optimizer: Optimizer,
  step: number,
  values: Readonly<Record<string, number | null>>,
  drop: () => void,
): void {
  throwIfNonFinite(step, values, drop);
  optimizer.step();
  optimizer.zeroGrad();
}

/**
 * The global gradient norm of `params`, clipped at `maxGradNorm` (null: no clipping and no norm,
 * the trainers' `--grad-clip 0`).
 */
export function clipGradients(params: ParamsInput, maxGradNorm: number | null): Tensor | null {
  return maxGradNorm === null ? null : clipGradNorm(params, maxGradNorm);
}

/** The timesteps of step s's batch of B: t_b = ⌊u_b T⌋, u from stream (seed, 'timesteps', s). */
export function trainingTimesteps(seed: number, step: number, batch: number, T: number): number[] {
  const u = rand([batch], {
    seed: streamSeed(seed, 'timesteps', step),
    dtype: 'float64',
    backend: cpuBackend(),
  });
  const out = Array.from(u.dataSync(), (v) => Math.min(T - 1, Math.floor(v * T)));
  u.dispose();
  return out;
}

export interface LossSettings {
  predictionType: PredictionType;
  varianceType: ModelVarType;
  /** Min-SNR-γ weighting (null: none). */
  snrGamma: number | null;
}

/** The loss of one (micro-)batch, scaled by its share `weight` of the batch (the caller runs backward). */
export function microBatchLoss(
  model: Denoiser,
  schedule: NoiseSchedule,
  opts: LossSettings,
  part: { x0: Tensor; noise: Tensor; timesteps: number[]; cond: Conditioning; weight: number },
): Tensor {
  const xt = addNoise(schedule, part.x0, part.noise, part.timesteps);
  const modelOutput = model.denoise(xt, part.timesteps, part.cond);
  const loss = trainingLoss(
    schedule,
    { x0: part.x0, noise: part.noise, timesteps: part.timesteps, modelOutput, xt },
    opts,
  );
  return part.weight === 1 ? loss : loss.mul(part.weight);
}

export interface DenoiserStepOptions extends Partial<LossSettings> {
  /** The step's index s (keys its draws of t and ε). */
  step: number;
  seed: number;
  /** Clip the global gradient norm to this (null: no clipping; default 1). */
  maxGradNorm?: number | null;
  /** The batch's condition (class labels, …); none by default. */
  cond?: Conditioning;
}

export interface DenoiserStepStats {
  loss: number;
  /** The gradient norm before clipping (null without clipping). */
  gradNorm: number | null;
}

/**
 * One optimizer step on the batch x0 [B, C, H, W] (the caller keeps and disposes it): the loss
 * with ε-prediction and fixed variance unless told otherwise, backward, clipping, the update.
 * Throws NonFiniteError, leaving the weights as they were, when the loss or gradient norm is not
 * finite.
 */
export async function denoiserTrainStep(
  model: Denoiser,
  schedule: NoiseSchedule,
  optimizer: Optimizer,
  x0: Tensor,
  o: DenoiserStepOptions,
): Promise<DenoiserStepStats> {
  const timesteps = trainingTimesteps(o.seed, o.step, x0.shape[0]!, schedule.numTrainTimesteps);
  const maxGradNorm = o.maxGradNorm === undefined ? 1 : o.maxGradNorm;
  const opts: LossSettings = {
    predictionType: o.predictionType ?? 'epsilon',
    varianceType: o.varianceType ?? 'fixed_small',
    snrGamma: o.snrGamma ?? null,
  };
  const scalars = tidy(() => {
    const noise = randn(x0.shape, {
      seed: streamSeed(o.seed, 'noise', o.step),
      dtype: x0.dtype,
      backend: x0.backend,
    });
    const loss = microBatchLoss(model, schedule, opts, {
      x0,
      noise,
      timesteps,
      cond: o.cond ?? {},
      weight: 1,
    });
    loss.backward();
    const norm = clipGradients(optimizer.params, maxGradNorm);
    return concat([reshape(loss, [1]), ...(norm === null ? [] : [reshape(norm, [1])])]);
  });
  // One readback for both scalars (each read waits for the device).
  const read = await scalars.data();
  scalars.dispose();
  const loss = read[0]!;
  const gradNorm = maxGradNorm === null ? null : read[1]!;
  updateIfFinite(optimizer, o.step, { 'the loss': loss, 'the gradient norm': gradNorm }, () =>
    optimizer.zeroGrad(),
  );
  return { loss, gradNorm };
}
