/**
 * The part of a scheduler that is the same for all of them: options resolved over diffusers'
 * defaults, the training schedule (β, ᾱ), the inference schedule set by `setTimesteps`, and the
 * config written back for diffusers. Subclasses add their step math (pure functions in their own
 * files) and the per-run state that `setTimesteps` resets.
 */
import type { Tensor } from '../../engine/index.js';
import { addNoise, getVelocity } from '../forward.js';
import type { NoiseSchedule } from '../schedule.js';
import {
  type BaseOptions,
  checkOneOf,
  type PredictionType,
  predictionTypes,
  type Scheduler,
  type StepOptions,
  type StepResult,
  trainSchedule,
} from './common.js';
import {
  type JsonValue,
  resolveOptions,
  type SchedulerSpec,
  writeDiffusersConfig,
} from './config.js';
import { discreteTimesteps, timestepSpacings } from './spacing.js';

export abstract class SchedulerBase<O extends BaseOptions> implements Scheduler {
  readonly config: Readonly<O>;
  /** The training schedule: β, ᾱ and the derived DDPM quantities. */
  readonly schedule: NoiseSchedule;
  timesteps: Float64Array;
  sigmas: Float64Array | null = null;
  numInferenceSteps: number | null = null;
  readonly order: number = 1;

  protected constructor(
    readonly spec: SchedulerSpec<O>,
    options: Partial<O>,
    opts: { zeroSnrOverride?: boolean; predictionTypes?: readonly PredictionType[] } = {},
  ) {
    const o = resolveOptions(spec.defaults, options);
    checkOneOf(
      'prediction_type',
      o.predictionType,
      opts.predictionTypes ?? predictionTypes,
      spec.className,
    );
    checkOneOf('timestep_spacing', o.timestepSpacing, timestepSpacings, spec.className);
    if (!Number.isInteger(o.stepsOffset)) {
      throw new Error(`${spec.className}: steps_offset must be an integer, got ${o.stepsOffset}`);
    }
    this.config = Object.freeze(o);
    this.schedule = trainSchedule(o, opts.zeroSnrOverride ?? false);
    // Before setTimesteps: every training timestep, descending (as diffusers).
    const T = o.numTrainTimesteps;
    this.timesteps = Float64Array.from({ length: T }, (_, i) => T - 1 - i);
  }

  get className(): string {
    return this.spec.className;
  }

  get betas(): Float64Array {
    return this.schedule.betas;
  }

  get alphasCumprod(): Float64Array {
    return this.schedule.alphasCumprod;
  }

  get initNoiseSigma(): number {
    return 1;
  }

  scaleModelInput(sample: Tensor, _timestep: number): Tensor {
    return sample;
  }

  toDiffusersConfig(): Record<string, JsonValue> {
    return writeDiffusersConfig(this.spec, this.config);
  }

  abstract setTimesteps(numInferenceSteps: number): void;
  abstract step(
    modelOutput: Tensor,
    timestep: number,
    sample: Tensor,
    opts?: StepOptions,
  ): StepResult;
  abstract addNoise(originalSamples: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor;
}

/**
 * The base of the schedulers that step between training timesteps with ᾱ (DDPM, DDIM, PNDM):
 * timesteps from the spacing, ᾱ at a timestep (past the end of the chain: 1, or ᾱ_0 when
 * `set_alpha_to_one` is false), and the forward process on the training schedule.
 */
export abstract class AlphaSchedulerBase<
  O extends BaseOptions & { setAlphaToOne?: boolean },
> extends SchedulerBase<O> {
  /** ᾱ past the end of the chain. */
  get finalAlphaCumprod(): number {
    return this.config.setAlphaToOne === false ? this.alphasCumprod[0]! : 1;
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    this.timesteps = discreteTimesteps(
      c.timestepSpacing,
      c.numTrainTimesteps,
      numInferenceSteps,
      c.stepsOffset,
    );
    this.numInferenceSteps = numInferenceSteps;
  }

  /** `t`, checked to be a training timestep. */
  protected trainingTimestep(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.alphasCumprod.length) {
      throw new Error(`${this.className}.step: timestep ${t} is not a training timestep`);
    }
    return t;
  }

  /** ᾱ_t at a training timestep, or past the end of the chain for t < 0. */
  protected alphaAt(t: number): number {
    return t < 0 ? this.finalAlphaCumprod : this.alphasCumprod[this.trainingTimestep(t)]!;
  }

  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor {
    return addNoise(this.schedule, originalSamples, noise, timesteps);
  }

  getVelocity(sample: Tensor, noise: Tensor, timesteps: ArrayLike<number>): Tensor {
    return getVelocity(this.schedule, sample, noise, timesteps);
  }
}
