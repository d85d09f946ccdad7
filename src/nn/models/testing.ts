/** Model configs for tests: small enough that a forward and backward take milliseconds. */
import type { UNet2DModelInput } from './unet-2d.js';

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
