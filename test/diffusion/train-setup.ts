/**
 * What the trainer and pipeline tests share: a tiny U-Net (its config and a seeded model), a tiny
 * text-conditioned U-Net and text encoder, and 8×8 MNIST on the CPU with a scratch folder.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

import { type Dataset, loadDataset } from '../../src/data/index.js';
import {
  resolveTrainConfig,
  runTraining,
  setUpTraining,
  Trainer,
  type TrainRequest,
} from '../../src/diffusion/index.js';
import {
  cpuBackend,
  Generator,
  setDefaultBackend,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { TINY_UNET } from '../../src/eval/test-models.js';
import type { TimestepInput } from '../../src/nn/models/embeddings.js';
import { type Conditioning, createModel, type UNet2DModel } from '../../src/nn/models/index.js';

export { TINY_UNET };

/**
 * An 8×8 UNet2DModel of TINY_UNET, one channel in and out, with weights drawn from `seed`;
 * `extra` adds to or overrides its config (num_class_embeds, in_channels, ...).
 */
export function tinyUNet(seed: number, extra: Record<string, unknown> = {}): UNet2DModel {
  const config = {
    ...TINY_UNET,
    _class_name: 'UNet2DModel',
    sample_size: 8,
    in_channels: 1,
    out_channels: 1,
    ...extra,
  };
  return createModel(config, { generator: new Generator(seed) }) as UNet2DModel;
}

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
 * The CPU backend as default, 8×8 MNIST and a scratch folder named from `prefix`, set up when
 * called (not in a `before` hook: Node runs a file's top-level `before` hooks without waiting for
 * one another, so a later hook could see the fields unset); an `after` hook removes the folder.
 */
export function trainFixture(prefix: string): TrainFixture {
  setDefaultBackend(cpuBackend());
  const fx: TrainFixture = {
    mnist8: loadDataset('mnist', { size: 8 }),
    dir: mkdtempSync(join(tmpdir(), prefix)),
  };
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

/**
 * A base model folder for adapter runs (LoRA, ControlNet): `model` on a 100-step schedule, trained
 * for 2 steps of batch 4 on 8×8 MNIST with `train`'s settings, saved once at the end.
 */
export async function trainBase(
  fx: TrainFixture,
  out: string,
  model: Record<string, unknown>,
  train: Record<string, unknown>,
): Promise<void> {
  const config = resolveTrainConfig(
    {
      model,
      scheduler: { num_train_timesteps: 100 },
      train: { data: 'mnist', steps: 2, batchSize: 4, warmupSteps: 0, ...train },
    },
    fx.mnist8,
  );
  const t = new Trainer(config, fx.mnist8);
  try {
    await runTraining(t, { outDir: out, settings: { saveEvery: 0, sampleEvery: 0 } });
  } finally {
    t.dispose();
  }
}

/** Sets up `req` and trains it to its end (or `stopAt`), with no checkpoint or sample on the way. */
export async function trainRequest(req: TrainRequest, stopAt?: number): Promise<Trainer> {
  const { trainer } = await setUpTraining(req);
  await runTraining(trainer, {
    outDir: req.outDir,
    stopAt,
    settings: { saveEvery: 0, sampleEvery: 0 },
  });
  return trainer;
}

/**
 * Trains `request(whole)` in one go and `request(parts)` stopped at `stopAt`, then resumed, and
 * asserts that each of `files` (under checkpoint/) has the same bytes in both.
 */
export async function assertResumesExactly(
  request: (out: string, extra?: Partial<TrainRequest>) => TrainRequest,
  whole: string,
  parts: string,
  stopAt: number,
  files: readonly string[],
): Promise<void> {
  (await trainRequest(request(whole))).dispose();
  (await trainRequest(request(parts), stopAt)).dispose();
  (await trainRequest(request(parts, { resume: true }))).dispose();
  for (const f of files) {
    const a = await readFile(join(whole, 'checkpoint', f));
    const b = await readFile(join(parts, 'checkpoint', f));
    assert.ok(a.equals(b), `${f} identical`);
  }
}

interface Denoiser {
  denoise(x: Tensor, t: TimestepInput, cond?: Conditioning): Tensor;
}

/**
 * Makes `model` keep a copy of the concatenated image (`cond.concatImage`) of every denoiser
 * call; returns the list it fills, one Float32Array a call.
 */
export function recordConcatImages(model: Denoiser): Float32Array[] {
  const seen: Float32Array[] = [];
  const denoise = model.denoise.bind(model);
  model.denoise = (x: Tensor, t: TimestepInput, cond: Conditioning = {}) => {
    seen.push(Float32Array.from(cond.concatImage!.dataSync()));
    return denoise(x, t, cond);
  };
  return seen;
}

/**
 * Trains `trainer` to its end into `out` (no checkpoint or sample on the way) and asserts that the
 * mean loss of the last 10 steps is under half that of the first 10.
 */
export async function assertLossHalves(trainer: Trainer, out: string): Promise<void> {
  const losses: number[] = [];
  await runTraining(trainer, {
    outDir: out,
    settings: { saveEvery: 0, sampleEvery: 0, logEvery: 1 },
    afterStep: (_, st) => losses.push(st.loss),
  });
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses.slice(0, 10));
  const last = mean(losses.slice(-10));
  assert.ok(last < first / 2, `average loss: first 10 steps ${first}, last 10 ${last}`);
}
