/**
 * Tiny random models for the evaluation tests: classifier folders as `sumi train-classifier`
 * writes them (classifier/ + sumi.json, optionally scheduler/ for a noise-aware one) and diffusion
 * model folders as `sumi train` writes them (unet/ + scheduler/ + sumi.json), 8×8 gray, built with
 * createModel from fixed seeds. For tests and scripts; not exported from the eval index.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { Generator } from '../engine/index.js';
import { createModel, saveModel } from '../nn/models/index.js';

/**
 * The U-Net of the tiny models, as a config without its class, size and channels: 2 levels of 8
 * and 16 channels, one resnet each, no attention (~40K parameters on 8×8 gray images).
 */
export const TINY_UNET = {
  block_out_channels: [8, 16],
  layers_per_block: 1,
  norm_num_groups: 4,
  down_block_types: ['DownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'UpBlock2D'],
  add_attention: false,
};

export interface ClassifierFixture {
  /** Classes (default 10). */
  numClasses?: number;
  /** Image side (default 8). */
  size?: number;
  /** Held-out fraction recorded in sumi.json (default 0.05) and its seed (default 3). */
  holdout?: number;
  seed?: number;
  /** A noise-aware classifier (for guidance) on a T-step DDPM schedule. */
  noiseAwareT?: number | null;
  /** Width of the features (default 16). */
  features?: number;
  /** The dataset it records it trained on (default 'mnist'). */
  data?: string;
}

/** Writes a random EncoderClassifierModel folder; returns its path. */
export async function writeTinyClassifier(dir: string, f: ClassifierFixture = {}): Promise<string> {
  const k = f.numClasses ?? 10;
  const size = f.size ?? 8;
  const holdout = f.holdout ?? 0.05;
  const seed = f.seed ?? 3;
  const T = f.noiseAwareT ?? null;
  const width = f.features ?? 16;
  const model = createModel(
    {
      _class_name: 'EncoderClassifierModel',
      sample_size: size,
      in_channels: 1,
      num_classes: k,
      time_conditioned: T !== null,
      num_train_timesteps: T,
      block_out_channels: [8, width],
      down_block_types: ['DownBlock2D', 'DownBlock2D'],
      layers_per_block: 1,
      norm_num_groups: 4,
      add_attention: false,
    },
    { generator: new Generator(11 + k + size + width) },
  );
  await saveModel(model, join(dir, 'classifier'));
  if (T !== null) {
    await mkdir(join(dir, 'scheduler'), { recursive: true });
    await writeFile(
      join(dir, 'scheduler', 'scheduler_config.json'),
      JSON.stringify({ _class_name: 'DDPMScheduler', num_train_timesteps: T }),
    );
  }
  const info = {
    format: 'sumi-classifier',
    version: 1,
    imageSize: size,
    channels: 1,
    numClasses: k,
    noiseAware: T !== null,
    numTrainTimesteps: T,
    data: f.data ?? 'mnist',
    step: 0,
    parameters: model.numParameters(),
    heldOut: holdout > 0 ? { fraction: holdout, step: 0, count: 0, scores: [] } : null,
    trainArgs: ['--data', f.data ?? 'mnist', '--holdout', String(holdout), '--seed', String(seed)],
  };
  await writeFile(join(dir, 'sumi.json'), JSON.stringify(info));
  return dir;
}

export interface ModelFixture {
  /** Class-conditional with a null class (default) or unconditional. */
  classes?: number | null;
  /** Image side (default 8). */
  size?: number;
  /** T of the DDPM schedule (default 100). */
  T?: number;
}

/** Writes a random UNet2DModel pipeline folder; returns its path. */
export async function writeTinyModel(dir: string, f: ModelFixture = {}): Promise<string> {
  const k = f.classes === undefined ? 10 : f.classes;
  const size = f.size ?? 8;
  const model = createModel(
    {
      _class_name: 'UNet2DModel',
      sample_size: size,
      in_channels: 1,
      out_channels: 1,
      ...TINY_UNET,
      num_class_embeds: k === null ? null : k + 1,
    },
    { generator: new Generator(5 + size) },
  );
  await saveModel(model, join(dir, 'unet'));
  await mkdir(join(dir, 'scheduler'), { recursive: true });
  await writeFile(
    join(dir, 'scheduler', 'scheduler_config.json'),
    JSON.stringify({ _class_name: 'DDPMScheduler', num_train_timesteps: f.T ?? 100 }),
  );
  const info = {
    format: 'sumi-model',
    version: 1,
    imageSize: size,
    channels: 1,
    conditioning: k === null ? 'none' : 'class',
    conditionDropout: k === null ? 0 : 0.1,
    numClasses: k,
    nullClassId: k,
    data: 'mnist',
    step: 0,
  };
  await writeFile(join(dir, 'sumi.json'), JSON.stringify(info));
  return dir;
}
