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
import { keep, noGrad, type Tensor, tidy, where } from '../../engine/index.js';
import { runToEnd, runToEndAsync } from '../generate.js';
import {
  type DenoiseModel,
  sampleStep,
  type Scheduler,
  type StepOptions,
} from '../samplers/index.js';
import { EditInputError, startNoise } from './inputs.js';
import { aroundVae, type EditLatentOptions, encodeLatents, latentMask } from './latent.js';
import { type EditSamplingOptions, withNoise } from './loop.js';

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
  checkInpaintOptions(scheduler, opts);
  const vae = opts.vae ?? null;
  if (vae === null) return blended(model, scheduler, image, opts.mask, opts);
  checkPixelMask(image, opts.mask);
  const m = opts.mask;
  return noGrad(() =>
    tidy(() => {
      const cells = latentMask(m, vae.spec.downsampleFactor);
      const x = aroundVae(image, opts, (x0) => blended(model, scheduler, x0, cells, opts));
      return opts.pasteKnown === false ? x : where(m, x, image);
    }),
  );
}

/** Where an asynchronous inpainting is, after each denoising step. */
export interface InpaintProgress {
  /** Denoising steps taken (model calls of the sampler, RePaint's repeated ones included). */
  step: number;
  total: number;
  /** The timestep the step started from. */
  t: number;
}

export interface InpaintAsyncOptions extends InpaintOptions {
  /** Cancels the run between two steps: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Called after every denoising step; a returned promise is awaited before the next step. */
  onProgress?: (progress: InpaintProgress) => void | Promise<void>;
}

/**
 * `inpaint` one step (or RePaint jump) at a time, yielding to the event loop in between so that
 * a page stays responsive and can cancel: the same images for the same options (the same run
 * object steps in both). When `signal` aborts, the run stops before its next step, frees every
 * tensor it made (the noise, the running sample, a latent model's encoded image and mask, the
 * scheduler's history) and rejects with `signal.reason`; `image` and `mask` stay the caller's.
 */
export async function inpaintAsync(
  model: DenoiseModel,
  scheduler: Scheduler,
  image: Tensor,
  opts: InpaintAsyncOptions,
): Promise<Tensor> {
  opts.signal?.throwIfAborted();
  checkInpaintOptions(scheduler, opts);
  const vae = opts.vae ?? null;
  if (vae !== null) checkPixelMask(image, opts.mask);
  // A latent model blends its latents under the latent cells' mask (as `inpaint` does).
  const made: Tensor[] = [];
  const x0 = vae === null ? image : own(made, encodeLatents(vae, image, opts.posteriorNoise));
  const mask =
    vae === null ? opts.mask : own(made, latentMask(opts.mask, vae.spec.downsampleFactor));
  try {
    const run = new InpaintRun(model, scheduler, x0, mask, opts);
    const total = repaintModelCalls(run.states);
    let calls = 0;
    const x = await runToEndAsync(run, opts.signal, async () => {
      const t = run.timestep;
      if (run.step()) await opts.onProgress?.({ step: ++calls, total, t });
    });
    if (vae === null) return x;
    try {
      return noGrad(() =>
        tidy(() => {
          const decoded = vae.decode(x);
          return opts.pasteKnown === false ? decoded : where(opts.mask, decoded, image);
        }),
      );
    } finally {
      x.dispose();
    }
  } finally {
    for (const t of made) t.dispose();
  }
}

/** t, kept out of every open scope and listed in `made` (the caller frees it). */
function own(made: Tensor[], t: Tensor): Tensor {
  made.push(keep(t));
  return t;
}

/** Throws unless the options (and, to resample, the sampler) make a run. */
function checkInpaintOptions(scheduler: Scheduler, opts: InpaintOptions): void {
  const resample = opts.resample ?? 1;
  repaintSchedule(opts.numInferenceSteps, opts.jumpLength ?? 1, resample);
  if (resample > 1) checkResamplingSampler(scheduler);
  const knownNoise = opts.knownNoise ?? 'fresh';
  if (knownNoise !== 'fresh' && knownNoise !== 'fixed') {
    throw new EditInputError(`knownNoise must be 'fresh' or 'fixed', got '${String(knownNoise)}'`);
  }
}

/** Throws unless a latent model's pixel mask is [B or 1, 1, H, W] of the images [B, C, H, W]. */
function checkPixelMask(image: Tensor, m: Tensor): void {
  const [b, , h, w] = image.shape as [number, number, number, number];
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
}

/** Mask blending of x_0 (pixels or latents) under `mask`, resampled as the options say. */
function blended(
  model: DenoiseModel,
  scheduler: Scheduler,
  x0: Tensor,
  mask: Tensor,
  opts: InpaintOptions,
): Tensor {
  return runToEnd(new InpaintRun(model, scheduler, x0, mask, opts));
}

/**
 * One inpainting run over its `states` (state s is the sample at timesteps[s]): RePaint's
 * schedule when resampling, else every step of the sampler's schedule once (a second-order
 * sampler's timesteps hold its stages), stepped by its caller: a move down is a sampler step from s followed
 * by the blend of the known region at s + 1; a move up is the forward process between the two
 * timesteps (DDPM or DDIM). It owns the noise and x_T (kept out of every scope) and frees each
 * sample once the next is made, so it lives across awaits. `inpaint` and `inpaintAsync` drive it.
 */
class InpaintRun {
  readonly #ts: ArrayLike<number>;
  readonly #stepOptions: StepOptions;
  readonly #eps: Tensor;
  readonly states: readonly number[];
  #x: Tensor;
  /** Moves taken: the run is at states[#k]. */
  #k = 0;

  constructor(
    readonly model: DenoiseModel,
    readonly scheduler: Scheduler,
    readonly x0: Tensor,
    readonly mask: Tensor,
    readonly opts: InpaintOptions,
  ) {
    scheduler.setTimesteps(opts.numInferenceSteps);
    this.#ts = scheduler.timesteps;
    const n = opts.numInferenceSteps;
    const resample = opts.resample ?? 1;
    this.states =
      resample > 1
        ? repaintSchedule(n, opts.jumpLength ?? 1, resample)
        : Array.from({ length: this.#ts.length + 1 }, (_, i) => i);
    this.#stepOptions = withNoise(scheduler, opts);
    // In a scope of its own: a draw can make intermediates (ImageNoise slices its block).
    const eps = keep(tidy(() => startNoise(opts.noise, x0.shape, 'inpaint')));
    try {
      this.#x = keep(noGrad(() => eps.mul(scheduler.initNoiseSigma)));
    } catch (e) {
      eps.dispose();
      throw e;
    }
    this.#eps = eps;
  }

  get done(): boolean {
    return this.#k >= this.states.length - 1;
  }

  /** The timestep of the state the run is at. */
  get timestep(): number {
    return this.#ts[Math.min(this.states[this.#k]!, this.#ts.length - 1)]!;
  }

  /** The known region at the timestep of index i of the schedule (x_0 past its end). */
  #blend(x: Tensor, i: number): Tensor {
    const ts = this.#ts;
    if (i >= ts.length) return where(this.mask, x, this.x0);
    const noise = this.opts.knownNoise === 'fixed' ? this.#eps : this.opts.noise();
    const at = new Array<number>(this.x0.shape[0]!).fill(ts[i]!);
    return where(this.mask, x, this.scheduler.addNoise(this.x0, noise, at));
  }

  /** Takes the next move; true when it was a denoising step (a model call). */
  step(): boolean {
    const a = this.states[this.#k]!;
    const b = this.states[this.#k + 1]!;
    const prev = this.#x;
    const next = noGrad(() =>
      tidy(() => {
        if (b > a) {
          const info = sampleStep(this.scheduler, this.model, prev, a, this.#stepOptions);
          this.opts.onStep?.(info);
          return this.#blend(info.sample, b);
        }
        const acp = this.scheduler.alphasCumprod;
        const ratio = acp[this.#ts[b]!]! / acp[this.#ts[a]!]!;
        const draw = this.#stepOptions.noise as () => Tensor;
        return prev.mul(Math.sqrt(ratio)).add(draw().mul(Math.sqrt(1 - ratio)));
      }),
    );
    // Like SamplingLoop's steps, the new sample goes to the caller's scope (if any): a latent
    // `inpaint` frees its result in aroundVae's scope once decoded.
    this.#x = next;
    prev.dispose();
    this.#k++;
    return b > a;
  }

  /** The result, which the caller now owns; frees the rest. */
  finish(): Tensor {
    this.#eps.dispose();
    return this.#x;
  }

  /** Frees everything (a cancelled or failed run), the scheduler's history too. */
  dispose(): void {
    this.#eps.dispose();
    this.#x.dispose();
    this.scheduler.setTimesteps(this.opts.numInferenceSteps);
  }
}
