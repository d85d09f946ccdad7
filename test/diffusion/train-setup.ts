/**
 * What the trainer tests share: a tiny U-Net, a tiny text-conditioned U-Net and text encoder, and
 * 8×8 MNIST on the CPU with a scratch folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';

import { type Dataset, loadDataset } from '../../src/data/index.js';
import { cpuBackend, setDefaultBackend, type Tensor, tensor } from '../../src/engine/index.js';

export { TINY_UNET } from '../../src/eval/test-models.js';

/** A 2-level UNet2DConditionModel with cross-attention at the lower level. */
export const TINY_TEXT_UNET = {
  _class_name: 'UNet2DConditionModel',
  block_out_channels: [8, 16],
  layers_per_block: 1,
  norm_num_groups: 4,
  attention_head_dim: 2,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  up_block_types: ['CrossAttnUpBlock2D', 'UpBlock2D'],
};

/** A 1-layer CLIPTextModel of width 8 (the text encoder of TINY_TEXT_UNET's models). */
export const TINY_TEXT_ENCODER = {
  hidden_size: 8,
  intermediate_size: 16,
  projection_dim: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
};

export interface TrainFixture {
  mnist8: Dataset;
  /** A scratch folder, removed after the file's tests. */
  dir: string;
}

/**
 * Registers the test file's `before` and `after` hooks: the CPU backend as default, 8×8 MNIST
 * and a scratch folder named from `prefix`. The fields are set once `before` has run.
 */
export function trainFixture(prefix: string): TrainFixture {
  const fx: TrainFixture = { mnist8: undefined as unknown as Dataset, dir: '' };
  before(async () => {
    setDefaultBackend(cpuBackend());
    fx.mnist8 = loadDataset('mnist', { size: 8 });
    fx.dir = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    await rm(fx.dir, { recursive: true, force: true });
  });
  return fx;
}

/** The first n images of a dataset as [n, C, H, W] in [−1, 1]. */
export function firstImages(ds: Dataset, n: number): Tensor {
  const size = ds.channels * ds.height * ds.width;
  const v = new Float32Array(n * size);
  for (let i = 0; i < n; i++)
    v.set(
      ds.get(i).image.map((p) => p * 2 - 1),
      i * size,
    );
  return tensor(v, [n, ds.channels, ds.height, ds.width]);
}
