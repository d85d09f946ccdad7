/**
 * Where the trainer's randomness comes from: every draw of step s uses a Philox key derived from
 * (seed, purpose, s), never a generator that advances with the process's history. Training steps
 * 0..k−1, saving, and resuming at k therefore draws exactly what one uninterrupted run draws, and
 * the whole "RNG state" of a checkpoint is the seed and the step.
 *
 * Purposes: 'noise' (ε of x_t), 'timesteps' (t ~ U{0..T−1}), 'labels' (classifier-free label
 * dropout), 'init' (initial weights), 'dropout' (the model's Dropout layers, see `dropoutOffset`),
 * 'preview' (the fixed noise of the sample grids), 'data' (the DataLoader's seed; it derives its
 * shuffle and flips from (that seed, epoch)); the classifier trainer adds 'augment' (random
 * translations), 'holdout' (the held-out split) and 'eval' (the noise of held-out evaluation);
 * text conditioning adds 'captions' (which caption of a sample a step uses) and
 * 'text_encoder_init' (the text encoder's initial weights); LoRA fine-tuning adds 'lora_init'
 * (the adapters' A matrices); inpainting adds 'masks' (the random training masks); latent
 * diffusion adds 'latent' (ε of the posterior sample z = μ + σ·ε of each step's latents);
 * DreamBooth adds 'prior' (the noise of the class images the base samples) and 'prior_data' (the
 * class images' DataLoader seed).
 */
import { cpuBackend, rand } from '../../engine/index.js';
import { Dropout } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';

export type StreamPurpose =
  | 'noise'
  | 'timesteps'
  | 'labels'
  | 'init'
  | 'dropout'
  | 'preview'
  | 'data'
  | 'augment'
  | 'holdout'
  | 'eval'
  | 'captions'
  | 'text_encoder_init'
  | 'lora_init'
  | 'masks'
  | 'latent'
  | 'prior'
  | 'prior_data';

const PURPOSE_TAG: Record<StreamPurpose, bigint> = {
  noise: 1n,
  timesteps: 2n,
  labels: 3n,
  init: 4n,
  dropout: 5n,
  preview: 6n,
  data: 7n,
  augment: 8n,
  holdout: 9n,
  eval: 10n,
  captions: 11n,
  text_encoder_init: 12n,
  lora_init: 13n,
  masks: 14n,
  latent: 15n,
  prior: 16n,
  prior_data: 17n,
};

const MASK64 = (1n << 64n) - 1n;

/** splitmix64's finalizer (Steele, Lea & Flood 2014): a bijective 64-bit mix. */
function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * A Philox seed (an integer in [0, 2^53)) for (seed, purpose, step): the three are mixed through
 * splitmix64 so that nearby seeds and steps give unrelated keys.
 */
export function streamSeed(seed: number, purpose: StreamPurpose, step = 0): number {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`seed must be an integer in [0, 2^53), got ${seed}`);
  }
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new Error(`step must be a non-negative integer, got ${step}`);
  }
  const golden = 0x9e3779b97f4a7c15n;
  let z = mix64((BigInt(seed) + golden) & MASK64);
  z = mix64((z ^ (PURPOSE_TAG[purpose] * golden)) & MASK64);
  z = mix64((z + BigInt(step) * golden) & MASK64);
  return Number(z >> 11n); // 53 bits
}

/** n uniforms in [0, 1) of stream (seed, purpose, step), drawn in float64 on the CPU. */
export function streamUniforms(
  n: number,
  seed: number,
  purpose: StreamPurpose,
  step = 0,
): Float64Array {
  const u = rand([n], {
    seed: streamSeed(seed, purpose, step),
    dtype: 'float64',
    backend: cpuBackend(),
  });
  const values = u.dataSync() as Float64Array;
  u.dispose();
  return values;
}

/**
 * Philox blocks reserved per training step in each Dropout layer's own stream: the layer draws
 * from block `step · DROPOUT_STRIDE` on at step `step` (2^30 blocks = 2^32 numbers per layer and
 * step; steps up to 2^23 fit the 2^53 counter).
 */
export const DROPOUT_STRIDE = 2 ** 30;

/** The offset a Dropout layer's generator is set to before step `step`. */
export function dropoutOffset(step: number): number {
  const o = step * DROPOUT_STRIDE;
  if (!Number.isSafeInteger(o)) throw new Error(`step ${step} is too large for dropout streams`);
  return o;
}

/** The Dropout layers of a trainer's modules, each on its own stream (see DROPOUT_STRIDE). */
export class DropoutStreams {
  readonly layers: readonly Dropout[];

  constructor(modules: readonly Module[]) {
    this.layers = modules
      .flatMap((m) => m.namedModules())
      .map(([, m]) => m)
      .filter((m): m is Dropout => m instanceof Dropout);
  }

  /** Points every layer's generator at its blocks of step `step`. */
  seek(step: number): void {
    for (const d of this.layers) d.generator.offset = dropoutOffset(step);
  }
}
