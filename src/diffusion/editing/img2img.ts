/**
 * img2img: SDEdit (Meng et al. 2021, "SDEdit: Guided Image Synthesis and Editing with Stochastic
 * Differential Equations", Algorithm 1) with diffusers' timestep arithmetic (the img2img
 * pipelines' `get_timesteps`). Of an n-step schedule, the last ⌊n·strength⌋ steps run:
 *
 *   init = min(⌊n · strength⌋, n);  t_start = n − init;  timesteps[t_start · order :]
 *   x = scheduler.addNoise(x_0, ε, timesteps[t_start · order])      (q(x_t | x_0))
 *
 * and the sampler continues from x, so any sampler of the registry works (the sigma schedulers'
 * `addNoise` is x_0 + σ ε, the scale their loop expects). At strength 1 the start is
 * ε · initNoiseSigma, exactly plain sampling from ε (diffusers' inpainting pipelines do the same
 * at strength 1): the forward process at the first timestep would keep a trace √ᾱ_t x_0 of the
 * image. Strength near 0 keeps the image, 1 ignores it; at 0 no step runs and the result is the
 * image itself (a strength above 0 that runs no step, ⌊n · strength⌋ = 0, is refused as a likely
 * mistake). On a latent model (`vae`) the same runs on the image's encoding and the result is
 * decoded (latent.ts); strength 0 is still the image itself, which no encoding round trip blurs.
 */
import { mul, noGrad, type Tensor, tidy } from '../../engine/index.js';
import type { DenoiseModel, Scheduler } from '../samplers/index.js';
import { EditInputError, startNoise } from './inputs.js';
import { aroundVae, type EditLatentOptions } from './latent.js';
import { type EditSamplingOptions, runSteps, withNoise } from './loop.js';

export interface Img2ImgOptions extends EditSamplingOptions, EditLatentOptions {
  /** How much of the schedule runs, in [0, 1] (0: the image itself). */
  strength: number;
}

/** Throws unless strength is in [0, 1]. */
export function checkStrength(strength: number): void {
  if (!(strength >= 0 && strength <= 1)) {
    throw new EditInputError(
      `strength must be in [0, 1] (0: keep the image, 1: ignore it), got ${strength}`,
    );
  }
}

/**
 * The index into `scheduler.timesteps` where SDEdit starts: t_start · order, with
 * t_start = n − min(⌊n · strength⌋, n) (n · order at strength 0: past the end). Throws when a
 * strength above 0 would run no step.
 */
export function img2imgStartIndex(numInferenceSteps: number, strength: number, order = 1): number {
  checkStrength(strength);
  const n = numInferenceSteps;
  const init = Math.min(Math.floor(n * strength), n);
  if (init === 0 && strength > 0) {
    throw new EditInputError(
      `strength ${strength} with ${n} steps runs no step (⌊${n} · ${strength}⌋ = 0): ` +
        `use a strength of at least 1/${n}, or more steps`,
    );
  }
  return (n - init) * order;
}

/**
 * SDEdit from `image` [B, C, H, W] in [−1, 1]: the forward process to the start timestep, then
 * the sampler to x_0 (with `vae`: in its latent space, the noise draws of the latents' shape).
 * Returns the edited images.
 */
export function img2img(
  model: DenoiseModel,
  scheduler: Scheduler,
  image: Tensor,
  opts: Img2ImgOptions,
): Tensor {
  const from = img2imgStartIndex(opts.numInferenceSteps, opts.strength, scheduler.order);
  if (opts.strength === 0) return image.alias();
  return aroundVae(image, opts, (x0) =>
    noGrad(() =>
      tidy(() => {
        scheduler.setTimesteps(opts.numInferenceSteps);
        const eps = startNoise(opts.noise, x0.shape, 'img2img');
        const t = scheduler.timesteps[from]!;
        const x =
          opts.strength === 1
            ? mul(eps, scheduler.initNoiseSigma)
            : scheduler.addNoise(x0, eps, new Array<number>(x0.shape[0]!).fill(t));
        return runSteps(scheduler, model, x, {
          from,
          stepOptions: withNoise(scheduler, opts),
          onStep: opts.onStep,
        });
      }),
    ),
  );
}
