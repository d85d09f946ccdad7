/** Model configs for tests: small enough that a forward and backward take milliseconds. */
import type { UNet2DModelInput } from '../../../src/nn/models/unet-2d.js';
import type { UNet2DConditionModelInput } from '../../../src/nn/models/unet-2d-condition.js';

/**
 * An 8×8 gray UNet2DModel with one plain and one attention level (8 and 16 channels, heads of
 * 4): every block kind of the model, at 41k parameters or so.
 */
export const TINY_UNET: Readonly<UNet2DModelInput> = {
  sample_size: 8,
  in_channels: 1,
  out_channels: 1,
  block_out_channels: [8, 16],
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  attention_head_dim: 4,
};

/**
 * An 8×8, 4-channel UNet2DConditionModel with cross-attention (to 6-wide tokens, heads of 2) at
 * the first level and a plain second level.
 */
export const TINY_COND_UNET: Readonly<UNet2DConditionModelInput> = {
  sample_size: 8,
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [8, 16],
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  cross_attention_dim: 6,
  attention_head_dim: 2,
};
