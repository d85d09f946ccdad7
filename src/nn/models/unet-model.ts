/**
 * The Denoiser base of diffusers' 2-D U-Nets, UNet2DModel and UNet2DConditionModel, whose
 * embedding is
 *
 *     emb = TimestepEmbedding(Timesteps(t)) (+ the class embedding of y),
 *
 * the sinusoidal projection computed in float32 and cast to the model's dtype.
 */
import type { Tensor } from '../../engine/index.js';
import type { Module } from '../module.js';
import { DiffusersModel } from './diffusers-model.js';
import {
  type AdditionalResiduals,
  classLabelsFor,
  type Conditioning,
  type ConditioningInputs,
  type Denoiser,
  denoiserInput,
  sampleShapeOf,
} from './denoiser.js';
import type { TimestepEmbedding, TimestepInput, Timesteps } from './embeddings.js';

/** The config keys the U-Net Denoiser base reads. */
export interface UNetDenoiserConfig {
  sample_size: number | readonly [number, number] | null;
  in_channels: number;
  num_class_embeds: number | null;
}

/**
 * The base of UNet2DModel and UNet2DConditionModel as Denoisers: the time (+ class) embedding,
 * the sample shape, the conditioning inputs, and `denoise`, which joins the conditioning's
 * concatenated image to x_t and hands the rest of the conditioning to the model's forward.
 */
export abstract class UNetDenoiser<C extends UNetDenoiserConfig>
  extends DiffusersModel<C>
  implements Denoiser
{
  abstract readonly timeProj: Timesteps;
  abstract readonly timeEmbedding: TimestepEmbedding;
  abstract readonly classEmbedding: Module | null;
  /** Whether the model reads encoder hidden states at all (UNet2DModel has no cross-attention). */
  protected abstract readonly readsEncoderHiddenStates: boolean;

  /**
   * The class embedding of `ids` (null: no class labels) joined to the time embedding `emb` of a
   * batch of `batch`, and whatever the model applies to the sum.
   */
  protected abstract withClassEmbedding(emb: Tensor, ids: Tensor | null, batch: number): Tensor;

  /** Width D of the encoder hidden states cross-attention reads (null: no cross-attention). */
  protected abstract crossAttentionDim(): number | null;

  /**
   * The model's forward on x (x_t joined with the concatenated image) under the conditioning's
   * class labels (and encoder hidden states), with a ControlNet's residuals.
   */
  protected abstract forwardConditioned(
    x: Tensor,
    t: TimestepInput,
    cond: Conditioning,
    residuals: AdditionalResiduals,
  ): Tensor;

  /** The time (+ class) embedding [B, temb] in the model's dtype. */
  embed(
    timestep: TimestepInput,
    batch: number,
    classLabels?: Tensor | readonly number[] | null,
  ): Tensor {
    const w = this.timeEmbedding.linear1.weight;
    const emb = this.timeEmbedding.forward(this.timeProj.project(timestep, batch, w));
    const classed = this.classEmbedding !== null;
    const ids = classLabelsFor(this.className, classed, classLabels, w.backend);
    return this.withClassEmbedding(emb, ids, batch);
  }

  get sampleShape(): readonly [number, number, number] {
    return sampleShapeOf(this.config);
  }

  get conditioningInputs(): ConditioningInputs {
    return {
      numClassEmbeds: this.classEmbedding === null ? null : this.config.num_class_embeds,
      crossAttentionDim: this.crossAttentionDim(),
    };
  }

  /**
   * The Denoiser call: class labels and/or encoder hidden states (+ their mask), a concatenated
   * image, with a ControlNet's residuals when given.
   */
  denoise(
    sample: Tensor,
    timestep: TimestepInput,
    cond: Conditioning = {},
    residuals: AdditionalResiduals = {},
  ): Tensor {
    if (!this.readsEncoderHiddenStates && (cond.encoderHiddenStates ?? null) !== null) {
      throw new Error(`${this.className}: has no cross-attention; encoder hidden states given`);
    }
    const x = denoiserInput(sample, cond, this.config.in_channels, this.className);
    return this.forwardConditioned(x, timestep, cond, residuals);
  }
}
