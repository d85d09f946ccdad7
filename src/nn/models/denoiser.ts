/**
 * The denoiser interface: ε_θ(x_t, t, c) (or x̂_0 / v̂, as the scheduler's prediction_type says),
 * one signature for every network the trainer and the pipelines drive. The conditioning c is a
 * value: nothing, class ids (a class embedding added to the time embedding), or encoder hidden
 * states τ_θ(y) that cross-attention reads (Rombach et al. 2022, eq. 3), with an optional mask
 * over their tokens.
 */
import { add, type Backend, concat, type Tensor, tensor } from '../../engine/index.js';
import type { Module } from '../module.js';
import type { TimestepInput } from './embeddings.js';

export interface Conditioning {
  /** Class ids [B] (int32), for models with a class embedding. */
  classLabels?: Tensor | null;
  /** τ_θ(y) [B, L, D], the keys and values of cross-attention. */
  encoderHiddenStates?: Tensor | null;
  /** [B, L]: 1 where a token is attended to, 0 where it is padding. */
  encoderAttentionMask?: Tensor | null;
  /**
   * An image [B, C', H, W] joined to x_t [B, C, H, W] on the channels before the first
   * convolution, so the model's in_channels is C + C' (SR3's upsampled low-resolution image,
   * Saharia et al. 2021).
   */
  concatImage?: Tensor | null;
  /**
   * ControlNet's condition image [B, C', H', W'] (diffusers' `controlnet_cond`, values in [0, 1]):
   * read by a ControlledDenoiser, refused by a plain U-Net.
   */
  controlnetCond?: Tensor | null;
}

/**
 * What a ControlNet adds to a U-Net (diffusers' `down_block_additional_residuals` and
 * `mid_block_additional_residual`): one tensor per skip, in the order the down path makes them
 * (conv_in's output first), and one for the mid block's output.
 */
export interface AdditionalResiduals {
  downBlockAdditionalResiduals?: readonly Tensor[] | null;
  midBlockAdditionalResidual?: Tensor | null;
}

/**
 * The class labels a model was given, checked against whether it has a class embedding: null for
 * a model without one, the labels as a tensor otherwise (numbers become int32 on `backend`).
 * `model` names the model in the errors.
 */
export function classLabelsFor(
  model: string,
  classConditional: boolean,
  labels: Tensor | readonly number[] | null | undefined,
  backend: Backend,
): Tensor | null {
  const given = labels ?? null;
  if (classConditional && given === null) {
    throw new Error(`${model}: this model is class-conditional; pass classLabels`);
  }
  if (!classConditional && given !== null) {
    throw new Error(`${model}: classLabels given, but the model has no class embedding`);
  }
  if (given === null) return null;
  return Array.isArray(given)
    ? tensor(Int32Array.from(given as number[]), [given.length], { dtype: 'int32', backend })
    : (given as Tensor);
}

/** The encoder half of a U-Net: the mid block's output and the skips (conv_in's output first). */
export interface EncoderOutput {
  hidden: Tensor;
  skips: Tensor[];
}

/** skip_i + r_i and mid + r_mid (diffusers' ControlNet path); `enc` as it is without residuals. */
export function addResiduals(
  enc: EncoderOutput,
  residuals: AdditionalResiduals,
  model: string,
): EncoderOutput {
  const down = residuals.downBlockAdditionalResiduals ?? null;
  const mid = residuals.midBlockAdditionalResidual ?? null;
  if (down !== null && down.length !== enc.skips.length) {
    throw new Error(
      `${model}: ${down.length} down block residuals for ${enc.skips.length} skip connections`,
    );
  }
  const shapeCheck = (r: Tensor, h: Tensor, what: string): void => {
    if (!r.sameShape(h)) {
      throw new Error(
        `${model}: ${what} residual is [${r.shape.join(', ')}], the U-Net's is [${h.shape.join(', ')}]`,
      );
    }
  };
  const skips =
    down === null
      ? enc.skips
      : enc.skips.map((h, i) => {
          shapeCheck(down[i]!, h, `down block ${i}`);
          return add(h, down[i]!);
        });
  if (mid !== null) shapeCheck(mid, enc.hidden, 'the mid block');
  return { hidden: mid === null ? enc.hidden : add(enc.hidden, mid), skips };
}

/** What a denoiser can be conditioned on. */
export interface ConditioningInputs {
  /** Rows of the class embedding (null: no class embedding). */
  numClassEmbeds: number | null;
  /** Width D of the encoder hidden states cross-attention reads (null: no cross-attention). */
  crossAttentionDim: number | null;
}

export interface Denoiser extends Module {
  /** diffusers' class name (`_class_name`). */
  readonly className: string;
  /** [channels, height, width] of x_t. */
  readonly sampleShape: readonly [number, number, number];
  readonly conditioningInputs: ConditioningInputs;
  /** The model output for x_t [B, C, H, W] at t under conditioning c. */
  denoise(sample: Tensor, timestep: TimestepInput, cond?: Conditioning): Tensor;
  /** The diffusers config.json text. */
  configJson(): string;
}

/** [C, H, W] of a model's samples from its config (sample_size may be a number or a pair). */
export function sampleShapeOf(config: {
  in_channels: number;
  sample_size: number | readonly [number, number] | null;
}): [number, number, number] {
  const s = config.sample_size;
  if (s === null) throw new Error('the model config has no sample_size');
  const [h, w] = typeof s === 'number' ? [s, s] : s;
  return [config.in_channels, h, w];
}

/**
 * The first convolution's input: x_t [B, C, H, W], joined on the channels with the conditioning's
 * `concatImage` [B, C', H, W] when there is one; C (+ C') must be the model's in_channels.
 */
export function denoiserInput(
  sample: Tensor,
  cond: Conditioning,
  inChannels: number,
  model: string,
): Tensor {
  if ((cond.controlnetCond ?? null) !== null) {
    throw new Error(`${model}: a ControlNet condition image given to a model without a ControlNet`);
  }
  const img = cond.concatImage ?? null;
  const c = sample.shape[1]!;
  if (img === null) {
    if (sample.rank === 4 && c !== inChannels) {
      throw new Error(
        `${model}: x_t [${sample.shape.join(', ')}] for a model of ${inChannels} input channels` +
          (c < inChannels
            ? `; the other ${inChannels - c} are an image joined to it (concatImage)`
            : ''),
      );
    }
    return sample;
  }
  const [b, , h, w] = sample.shape;
  if (img.rank !== 4 || img.shape[0] !== b || img.shape[2] !== h || img.shape[3] !== w) {
    throw new Error(
      `${model}: the concatenated image is [${img.shape.join(', ')}]; x_t is ` +
        `[${sample.shape.join(', ')}], and the two must agree in batch, height and width`,
    );
  }
  if (c + img.shape[1]! !== inChannels) {
    throw new Error(
      `${model}: x_t (${c} channels) and the concatenated image (${img.shape[1]}) make ` +
        `${c + img.shape[1]!} channels; the model takes ${inChannels}`,
    );
  }
  return concat([sample, img], 1);
}
