/**
 * DDIM inversion (Song et al. 2021, "Denoising Diffusion Implicit Models", §4.3: deterministic
 * DDIM is an Euler discretization of an ODE, which can be integrated from x_0 towards x_T;
 * diffusers' DDIMInverseScheduler). A DDIM sampling step from t to s = t − ⌊T/n⌋ (x̂_0 unclipped)
 *
 *   x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s) ε̂,   ε̂ = ε_θ(x_t, t),   x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t
 *
 * is undone by the same pair of equations solved for x_t:
 *
 *   x̂_0 = (x_s − √(1 − ᾱ_s) ε̂) / √ᾱ_s,   x_t = √ᾱ_t x̂_0 + √(1 − ᾱ_t) ε̂,
 *
 * where ε̂ = ε_θ(x_t, t) depends on the unknown x_t. The plain inversion takes ε_θ(x_s, t)
 * instead (as diffusers), which leaves an error of the model's change over one step at every
 * step; each fixed-point iteration evaluates ε̂ at the last estimate of x_t instead (Pan et al.
 * 2023, "Effective Real Image Editing with Accelerated Iterative Diffusion Inversion"), one
 * model call each, and converges to the exact inverse when the step is small. The first step
 * starts past the end of the chain (ᾱ_s = 1 with `set_alpha_to_one`: x_s is the image) and the
 * last ends at timesteps[0]. Clipping x̂_0 loses what it cuts off, so neither the inversion nor
 * the sampling that reconstructs from it clips (`inversionSchedulerConfig`). Other samplers
 * (stochastic, multistep, or in σ) are not inverted. On a latent model (`vae`) the image's
 * encoding is inverted (latent.ts), and x_T is a latent.
 */
import { type Tensor, tidy, noGrad } from '../../engine/index.js';
import { predictedEpsilon } from '../forward.js';
import { DDIMScheduler, type DenoiseModel, meanPartOf, type Scheduler } from '../samplers/index.js';
import { EditInputError } from './inputs.js';
import { type EditLatentOptions, encodeLatents } from './latent.js';

export interface InversionStep {
  /** Index into `scheduler.timesteps` of the timestep reached (counting down to 0). */
  i: number;
  t: number;
  /** x_t (freed when the callback returns). */
  sample: Tensor;
}

export interface InvertOptions extends EditLatentOptions {
  numInferenceSteps: number;
  /** Fixed-point refinements of each step (0: the plain mirrored step; see the module comment). */
  fixedPointIterations?: number;
  onStep?: (info: InversionStep) => void;
}

/** The scheduler as a DDIMScheduler, or an error saying that only DDIM is inverted. */
export function invertibleScheduler(scheduler: Scheduler): DDIMScheduler {
  if (!(scheduler instanceof DDIMScheduler)) {
    throw new EditInputError(
      `only DDIM (η = 0) is invertible: its step is a deterministic function that can be run ` +
        `backwards; ${scheduler.className} is not`,
    );
  }
  return scheduler;
}

/**
 * x at `timesteps[0]` of an n-step DDIM schedule whose DDIM sampling (η = 0, x̂_0 unclipped) gives
 * back `image` [B, C, H, W] in [−1, 1] (see the module comment; with `vae`, whose decoding of
 * that sampling gives back the image up to the autoencoder's error). The scheduler must be a
 * DDIMScheduler; its clipping and thresholding are not applied.
 */
export function ddimInvert(
  model: DenoiseModel,
  scheduler: Scheduler,
  image: Tensor,
  opts: InvertOptions,
): Tensor {
  const ddim = invertibleScheduler(scheduler);
  const iterations = opts.fixedPointIterations ?? 0;
  if (!Number.isInteger(iterations) || iterations < 0) {
    throw new EditInputError(`fixed-point iterations must be an integer ≥ 0, got ${iterations}`);
  }
  const type = ddim.config.predictionType;
  const acp = ddim.alphasCumprod;
  const vae = opts.vae ?? null;
  return noGrad(() =>
    tidy(() => {
      const start = vae === null ? image : encodeLatents(vae, image, opts.posteriorNoise);
      const channels = start.shape[1]!;
      ddim.setTimesteps(opts.numInferenceSteps);
      const ts = ddim.timesteps;
      const stride = Math.floor(ddim.config.numTrainTimesteps / opts.numInferenceSteps);
      let x = start;
      for (let i = ts.length - 1; i >= 0; i--) {
        const t = ts[i]!;
        const s = t - stride;
        const aS = s < 0 ? ddim.finalAlphaCumprod : acp[s]!;
        const aT = acp[t]!;
        const xS = x;
        x = tidy(() => {
          let y = xS;
          for (let k = 0; k <= iterations; k++) {
            const out = meanPartOf(model(y, t), channels);
            const eps = predictedEpsilon(type, out, y, Math.sqrt(aT), Math.sqrt(1 - aT));
            const x0 = xS.sub(eps.mul(Math.sqrt(1 - aS))).mul(1 / Math.sqrt(aS));
            y = x0.mul(Math.sqrt(aT)).add(eps.mul(Math.sqrt(1 - aT)));
          }
          opts.onStep?.({ i, t, sample: y });
          return y;
        });
        if (xS !== start) xS.dispose();
      }
      return x === image ? image.alias() : x;
    }),
  );
}

/**
 * The scheduler config of inversion and of the sampling that reconstructs from it: clipping and
 * thresholding of x̂_0 off (neither can be run backwards).
 */
export function inversionSchedulerConfig(
  config: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  return { ...config, clip_sample: false, thresholding: false };
}
