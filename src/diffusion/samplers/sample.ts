/**
 * The standard sampling loop of a diffusers pipeline, for any scheduler:
 *
 *   scheduler.setTimesteps(n);  x = x_T · initNoiseSigma
 *   for t in scheduler.timesteps:  x = step(model(scaleModelInput(x, t), t), t, x).prevSample
 *
 * Each iteration runs in a memory scope, so only the running sample (and the scheduler's own
 * history) stays alive. Progress and trajectories reach the caller through `onStep`.
 *
 * A learned-variance model outputs [B, 2C, ...]: the mean part (ε, x_0 or v), then Σ_θ's part.
 * A scheduler that samples with Σ_θ (`usesLearnedVariance`: DDPM with a learned variance type)
 * gets the whole output; every other one (DDIM, Euler, DPM-Solver, ...) gets the mean part
 * only, as diffusers' DeepFloyd IF pipeline splits it before `step` when the scheduler's
 * variance_type is not a learned one.
 */
import { type Generator, mul, type Tensor, tidy } from '../../engine/index.js';
import { meanPartOf, type Scheduler, type StepOptions } from './common.js';

/** A denoiser: the model input (already scaled) and the timestep to the model output. */
export type DenoiseModel = (x: Tensor, t: number) => Tensor;

export interface StepInfo {
  /** Index into `scheduler.timesteps`. */
  i: number;
  t: number;
  /** x after this step (x_{t−1}). */
  sample: Tensor;
  predOriginalSample: Tensor | null;
  modelInput: Tensor;
  /** What `step` got: the model output, or its mean part (see the module comment). */
  modelOutput: Tensor;
}

export interface SampleOptions {
  numInferenceSteps: number;
  /** Noise for stochastic schedulers (unless `stepOptions.noise` is given). */
  generator?: Generator;
  /** Extra `step` options (η for DDIM, explicit noise, churn, LMS order, ...). */
  stepOptions?: StepOptions;
  /**
   * Called after every step, synchronously. The tensors are freed when it returns: keep what
   * you need with `keep(t.alias())` (or read it, on the CPU, with `dataSync()`).
   */
  onStep?: (info: StepInfo) => void;
}

/** Runs the full reverse process from x_T (unit-variance noise) and returns x_0. */
export function sample(
  scheduler: Scheduler,
  model: DenoiseModel,
  xT: Tensor,
  opts: SampleOptions,
): Tensor {
  const loop = new SamplingLoop(scheduler, model, xT, opts);
  while (!loop.done) loop.step();
  return loop.sample;
}

/**
 * The loop of `sample`, one step per call, for callers that do something between steps (yield to
 * the event loop, check for a cancel). Owns its running sample: `sample` hands it over, and
 * `dispose` frees it with the scheduler's history (by resetting its timesteps).
 */
export class SamplingLoop {
  #x: Tensor;
  #i = 0;
  readonly #stepOptions: StepOptions;

  constructor(
    readonly scheduler: Scheduler,
    readonly model: DenoiseModel,
    xT: Tensor,
    readonly opts: SampleOptions,
  ) {
    scheduler.setTimesteps(opts.numInferenceSteps);
    this.#stepOptions = { ...opts.stepOptions };
    if (opts.generator !== undefined) this.#stepOptions.generator = opts.generator;
    this.#x = mul(xT, scheduler.initNoiseSigma);
  }

  /** Steps taken, and the number of steps of the run. */
  get index(): number {
    return this.#i;
  }
  get total(): number {
    return this.scheduler.timesteps.length;
  }
  get done(): boolean {
    return this.#i >= this.total;
  }

  /** The running sample (x_0 once `done`); the loop's own until `dispose`. */
  get sample(): Tensor {
    return this.#x;
  }

  /** Takes the next step; `onStep` sees it. */
  step(): void {
    const i = this.#i;
    const next = tidy(() => {
      const info = sampleStep(this.scheduler, this.model, this.#x, i, this.#stepOptions);
      this.opts.onStep?.(info);
      return info.sample;
    });
    this.#x.dispose();
    this.#x = next;
    this.#i = i + 1;
  }

  /** Frees the running sample and the scheduler's history (a cancelled or failed run). */
  dispose(): void {
    this.#x.dispose();
    this.scheduler.setTimesteps(this.opts.numInferenceSteps);
  }
}

/**
 * The step options a guided pipeline samples with: under classifier-free or classifier guidance
 * (w ≠ 1) where the scheduler clips (or thresholds) x̂_0, DDIM re-derives
 * ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t) from the clipped x̂_0, as GLIDE does, unless `given` says
 * otherwise. diffusers' DDIMPipeline keeps the model's ε̂ (use_clipped_model_output=None), which
 * stays parallel to an x̂_0 the clip has moved: guided samples become noise (models/mnist-cond,
 * DDIM 20 steps, guidance 3: conditional accuracy 0.35 against 1.00 with the re-derived ε̂).
 * Unguided runs keep diffusers' choice (models/mnist-sr's SR3 is 0.2 dB below bicubic with the
 * re-derived ε̂, 2.9 dB above it without). Other samplers ignore the option.
 */
export function pipelineStepOptions(
  scheduler: Scheduler,
  guidanceScale: number,
  given: StepOptions = {},
): StepOptions {
  const c = scheduler.config;
  const clips = c.clipSample === true || c.thresholding === true;
  return { useClippedModelOutput: clips && guidanceScale !== 1, ...given };
}

/**
 * One iteration of the loop: x at `scheduler.timesteps[i]` to the next sample, with what
 * `onStep` reports. For loops that start mid-schedule or change x between steps (the editing
 * pipelines); `setTimesteps` must have been called.
 */
export function sampleStep(
  scheduler: Scheduler,
  model: DenoiseModel,
  x: Tensor,
  i: number,
  stepOptions: StepOptions = {},
): StepInfo {
  const t = scheduler.timesteps[i];
  if (t === undefined) {
    throw new Error(`step ${i} is outside the ${scheduler.timesteps.length} inference timesteps`);
  }
  const modelInput = scheduler.scaleModelInput(x, t);
  const output = model(modelInput, t);
  const modelOutput =
    scheduler.usesLearnedVariance === true ? output : meanPartOf(output, x.shape[1]!);
  const r = scheduler.step(modelOutput, t, x, stepOptions);
  return {
    i,
    t,
    sample: r.prevSample,
    predOriginalSample: r.predOriginalSample,
    modelInput,
    modelOutput,
  };
}
