/**
 * Inpainting with any denoiser by mask blending (Lugmayr et al. 2022, "RePaint: Inpainting using
 * Denoising Diffusion Probabilistic Models", Algorithm 1; diffusers' inpainting pipelines do the
 * same for a UNet not trained to inpaint). With m = 1 where the image is repainted, after every
 * step from t to t' the known region is the original pushed through the forward process to t':
 *
 *   x_t' ← m ⊙ x_t' + (1 − m) ⊙ addNoise(x_0, ε, t'),   and ← m ⊙ x + (1 − m) ⊙ x_0 after the last,
 *
 * so the known pixels of the result are the input's exactly. ε is a fresh draw at every step
 * (RePaint) or, with `knownNoise: 'fixed'`, the ε of x_T throughout (diffusers' pipelines): then
 * the known region follows one forward trajectory instead of an independent sample per step.
 * The sampler only sees the known region through the noise, so the two parts can disagree;
 * RePaint's resampling (§4.3) lets them harmonize: at every j-th state from the end, the sample
 * goes back up j steps by the forward process between the two timesteps,
 *
 *   x_b = √(ᾱ_b/ᾱ_a) x_a + √(1 − ᾱ_b/ᾱ_a) ε      (q(x_b | x_a), ᾱ_b < ᾱ_a),
 *
 * and is denoised again, r − 1 times per such state (`repaintSchedule`). Going back and forth
 * needs a sampler whose step depends on its timestep only: DDPM (RePaint's) or DDIM. On a latent
 * model all of this runs on the image's latents under the latents' mask (latent.ts), unchanged.
 */
import { noGrad, type Tensor, tidy, where } from '../../engine/index.js';
import {
  type DenoiseModel,
  sampleStep,
  type Scheduler,
  type StepOptions,
} from '../samplers/index.js';
import { EditInputError, startNoise } from './inputs.js';
import { aroundVae, type EditLatentOptions, latentMask } from './latent.js';
import { type EditSamplingOptions, runSteps, withNoise } from './loop.js';

export interface InpaintOptions extends EditSamplingOptions, EditLatentOptions {
  /**
   * 1 where the image is repainted, 0 where it is kept: broadcastable to the images (with `vae`:
   * [B or 1, 1, H, W] of the images' size).
   */
  mask: Tensor;
  /** With `vae`: the kept pixels of the decoded result are the input's (default true). */
  pasteKnown?: boolean;
  /** RePaint's jump length j: states between two resampling points (used when resample > 1). */
  jumpLength?: number;
  /** RePaint's r: times each resampling point is passed (1: plain mask blending). */
  resample?: number;
  /**
   * The ε of the known region's forward process: a fresh draw at every step ('fresh', RePaint),
   * or the starting noise x_T throughout ('fixed', diffusers' inpainting pipelines). Default fresh.
   */
  knownNoise?: KnownNoise;
}

export type KnownNoise = 'fresh' | 'fixed';

/** The samplers whose step is a function of its timestep alone, which resampling needs. */
export const RESAMPLING_SAMPLERS: readonly string[] = ['DDPMScheduler', 'DDIMScheduler'];

/**
 * The states RePaint passes through for n steps, jump length j and r passes: state s (0..n) is
 * the sample before step s (0: x_T, n: the result). From s the next state is s + 1 (a denoising
 * step) or s − j (a jump back up). Jump points are the states n − 1 − k·j (k ≥ 0) from which a
 * whole jump fits (s ≥ j); each is left upwards r − 1 times, each time it is reached going down
 * (the schedule of RePaint's code and diffusers' RePaintScheduler). r = 1: 0, 1, ..., n.
 */
export function repaintSchedule(n: number, jumpLength: number, resample: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new EditInputError(`steps must be ≥ 1, got ${n}`);
  checkResampling(n, jumpLength, resample);
  const pending = new Map<number, number>();
  if (resample > 1) {
    for (let k = 0; n - 1 - k * jumpLength >= jumpLength; k++) {
      pending.set(n - 1 - k * jumpLength, resample - 1);
    }
  }
  const states = [0];
  let s = 0;
  let cameDown = true;
  while (s < n) {
    const left = cameDown ? (pending.get(s) ?? 0) : 0;
    if (left > 0) {
      pending.set(s, left - 1);
      s -= jumpLength;
      cameDown = false;
    } else {
      s += 1;
      cameDown = true;
    }
    states.push(s);
  }
  return states;
}

/** Model calls of a RePaint schedule (its denoising transitions). */
export function repaintModelCalls(states: readonly number[]): number {
  let calls = 0;
  for (let k = 1; k < states.length; k++) if (states[k]! > states[k - 1]!) calls++;
  return calls;
}

/** Throws unless (j, r) is a valid resampling setting for n steps. */
export function checkResampling(n: number, jumpLength: number, resample: number): void {
  if (!Number.isInteger(resample) || resample < 1) {
    throw new EditInputError(`resample must be an integer ≥ 1 (1: no resampling), got ${resample}`);
  }
  if (resample === 1) return;
  if (!Number.isInteger(jumpLength) || jumpLength < 1 || jumpLength >= n) {
    throw new EditInputError(
      `the jump length must be an integer from 1 to steps − 1 = ${n - 1}, got ${jumpLength}`,
    );
  }
}

/** Throws unless the scheduler can resample (see RESAMPLING_SAMPLERS). */
export function checkResamplingSampler(scheduler: Scheduler): void {
  if (!RESAMPLING_SAMPLERS.includes(scheduler.className)) {
    throw new EditInputError(
      `RePaint resampling steps the sampler back and forth, which needs a step that depends on ` +
        `its timestep only: ddpm or ddim, not ${scheduler.className}`,
    );
  }
}

/**
 * Inpaints `image` [B, C, H, W] in [−1, 1] where `mask` is 1 (see the module comment). Without
 * resampling any sampler works; with it, DDPM or DDIM. With `vae` (a latent model) the blending
 * runs on the image's latents under `latentMask` and the result is decoded; the autoencoder
 * cannot keep pixels exactly, so the kept pixels are then pasted back (`pasteKnown`, default on).
 * Returns the completed images.
 */
export function inpaint(
  model: DenoiseModel,
  scheduler: Scheduler,
  image: Tensor,
  opts: InpaintOptions,
): Tensor {
  const n = opts.numInferenceSteps;
  const resample = opts.resample ?? 1;
  const states = repaintSchedule(n, opts.jumpLength ?? 1, resample);
  if (resample > 1) checkResamplingSampler(scheduler);
  const knownNoise = opts.knownNoise ?? 'fresh';
  if (knownNoise !== 'fresh' && knownNoise !== 'fixed') {
    throw new EditInputError(`knownNoise must be 'fresh' or 'fixed', got '${String(knownNoise)}'`);
  }
  const vae = opts.vae ?? null;
  if (vae === null) return blended(model, scheduler, image, opts.mask, states, opts);
  const [b, , h, w] = image.shape as [number, number, number, number];
  const m = opts.mask;
  if (
    m.rank !== 4 ||
    (m.shape[0] !== 1 && m.shape[0] !== b) ||
    m.shape[2] !== h ||
    m.shape[3] !== w
  ) {
    throw new EditInputError(
      `the mask is [${m.shape.join(', ')}]; the images are [${image.shape.join(', ')}], and ` +
        `a mask is [${b} or 1, 1, ${h}, ${w}]`,
    );
  }
  return noGrad(() =>
    tidy(() => {
      const cells = latentMask(m, vae.spec.downsampleFactor);
      const x = aroundVae(image, opts, (x0) => blended(model, scheduler, x0, cells, states, opts));
      return opts.pasteKnown === false ? x : where(m, x, image);
    }),
  );
}

/** Mask blending of x_0 (pixels or latents) under `mask` over the RePaint `states`. */
function blended(
  model: DenoiseModel,
  scheduler: Scheduler,
  x0: Tensor,
  mask: Tensor,
  states: readonly number[],
  opts: InpaintOptions,
): Tensor {
  const batch = x0.shape[0]!;
  const at = (t: number): number[] => new Array<number>(batch).fill(t);
  return noGrad(() =>
    tidy(() => {
      scheduler.setTimesteps(opts.numInferenceSteps);
      const ts = scheduler.timesteps;
      const stepOptions = withNoise(opts, scheduler);
      const eps = startNoise(opts.noise, x0.shape, 'inpaint');
      const xT = eps.mul(scheduler.initNoiseSigma);
      const known = opts.knownNoise === 'fixed' ? () => eps : opts.noise;
      // The known region at the timestep of index i of the schedule (x_0 past its end).
      const blend = (x: Tensor, i: number): Tensor =>
        where(mask, x, i < ts.length ? scheduler.addNoise(x0, known(), at(ts[i]!)) : x0);
      if ((opts.resample ?? 1) === 1) {
        return runSteps(scheduler, model, xT, {
          from: 0,
          stepOptions,
          onStep: opts.onStep,
          afterStep: (x, i) => blend(x, i + 1),
        });
      }
      return resampled(model, scheduler, xT, states, { stepOptions, blend, onStep: opts.onStep });
    }),
  );
}

/** The RePaint loop over `states` (DDPM or DDIM: state s is the sample at timesteps[s]). */
function resampled(
  model: DenoiseModel,
  scheduler: Scheduler,
  xT: Tensor,
  states: readonly number[],
  opts: {
    stepOptions: StepOptions;
    blend: (x: Tensor, i: number) => Tensor;
    onStep?: InpaintOptions['onStep'];
  },
): Tensor {
  const acp = scheduler.alphasCumprod;
  const ts = scheduler.timesteps;
  const draw = opts.stepOptions.noise as () => Tensor;
  let x = xT;
  for (let k = 1; k < states.length; k++) {
    const a = states[k - 1]!;
    const b = states[k]!;
    const prev = x;
    x = tidy(() => {
      if (b > a) {
        const info = sampleStep(scheduler, model, prev, a, opts.stepOptions);
        opts.onStep?.(info);
        return opts.blend(info.sample, b);
      }
      const ratio = acp[ts[b]!]! / acp[ts[a]!]!;
      return prev.mul(Math.sqrt(ratio)).add(draw().mul(Math.sqrt(1 - ratio)));
    });
    if (prev !== xT) prev.dispose();
  }
  return x;
}
