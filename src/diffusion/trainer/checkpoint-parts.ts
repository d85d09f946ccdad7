/**
 * What every trainer's checkpoint holds besides its models, written and read one way: the
 * optimizer's state (`optimizer.safetensors`), a model folder (config.json + weights, refused
 * when a weight is NaN or infinite), the records of `trainer_state.json` and `sumi.json` (random
 * streams, data position, the run's settings and command), and `trainer_state.json` read back
 * and checked. The optimizer and its learning-rate schedule are set up here too, from the keys
 * every trainer's config shares.
 */
import { join } from 'node:path';

import type { DataLoader, Dataset } from '../../data/index.js';
import type { Backend, Tensor } from '../../engine/index.js';
import {
  AdamW,
  disposeAll,
  firstNonFinite,
  getLrSchedule,
  loadTensors,
  type LrSchedule,
  type ParamsInput,
  serializeSafetensors,
  type TensorToWrite,
  tensorsToWrite,
} from '../../nn/index.js';
import {
  type CheckpointFile,
  jsonBytes,
  OPTIMIZER_FILE,
  SUMI_INFO,
  TRAINER_STATE,
} from './checkpoint.js';
import { type OptimizerConfig, TrainConfigError } from './config.js';
import { readJsonFile } from '../files.js';
import { NonFiniteError } from '../train-step.js';

/** The config keys of AdamW and its learning-rate schedule (without betas and eps: AdamW's). */
export type OptimizerSettings = Pick<
  OptimizerConfig,
  'steps' | 'lr' | 'lrSchedule' | 'warmupSteps' | 'minLr' | 'weightDecay'
> &
  Partial<Pick<OptimizerConfig, 'adamBetas' | 'adamEps'>>;

/** AdamW over `params` at the config's peak rate, and the schedule that sets its rate each step. */
export function createOptimizer(
  params: ParamsInput,
  c: OptimizerSettings,
): { optimizer: AdamW; lr: LrSchedule } {
  const optimizer = new AdamW(params, {
    lr: c.lr,
    betas: c.adamBetas,
    eps: c.adamEps,
    weightDecay: c.weightDecay,
  });
  const lr = getLrSchedule(c.lrSchedule, {
    lr: c.lr,
    warmupSteps: c.warmupSteps,
    trainingSteps: c.steps,
    minLr: c.minLr,
  });
  return { optimizer, lr };
}

/** The bytes of `optimizer.safetensors`: an optimizer's state as F32 tensors. */
export async function optimizerStateBytes(opt: AdamW): Promise<Uint8Array> {
  const sd = opt.stateDict();
  const entries = await tensorsToWrite(sd, 'F32');
  disposeAll(sd);
  return serializeSafetensors(entries, { format: 'pt' });
}

/**
 * Loads an optimizer's state from `file` (`optimizer.safetensors` unless named) of a checkpoint
 * directory onto the backend of its parameters.
 */
export async function loadOptimizerState(
  opt: AdamW,
  dir: string,
  file = OPTIMIZER_FILE,
): Promise<void> {
  const backend: Backend = opt.params[0]![1].backend;
  const path = join(dir, file);
  const sd = await loadTensors(path, { backend });
  try {
    await opt.loadStateDict(sd, { source: path });
  } finally {
    disposeAll(sd);
  }
}

/**
 * The files a checkpoint ends with: the optimizer's state, the trainer's `more` files (e.g. a
 * second model and its optimizer), `sumi.json` (`info`), and `trainer_state.json` (`state`) last.
 */
export async function closingFiles(
  optimizer: AdamW,
  info: unknown,
  state: unknown,
  more: readonly CheckpointFile[] = [],
): Promise<CheckpointFile[]> {
  return [
    { path: OPTIMIZER_FILE, bytes: await optimizerStateBytes(optimizer) },
    ...more,
    { path: SUMI_INFO, bytes: jsonBytes(info) },
    { path: TRAINER_STATE, bytes: jsonBytes(state) },
  ];
}

/**
 * Named weights as F32 safetensors entries; a NaN or infinite one stops the save with a
 * NonFiniteError of the step that made it (`step` is the steps completed), named with `prefix`.
 */
export async function finiteWeights(
  named: Iterable<readonly [string, Tensor]>,
  step: number,
  prefix = '',
): Promise<TensorToWrite[]> {
  const weights = await tensorsToWrite(named, 'F32');
  const bad = firstNonFinite(weights);
  if (bad !== null) throw new NonFiniteError(step - 1, `the weight '${prefix}${bad}'`, NaN);
  return weights;
}

/** A diffusers model folder inside a checkpoint: `dir/config.json` and `dir/<weightsName>`. */
export function modelFolderFiles(
  dir: string,
  configJson: string,
  weightsName: string,
  weights: readonly TensorToWrite[],
): CheckpointFile[] {
  return [
    { path: join(dir, 'config.json'), bytes: new TextEncoder().encode(configJson) },
    { path: join(dir, weightsName), bytes: serializeSafetensors(weights, { format: 'pt' }) },
  ];
}

/** What a checkpoint records about the run that wrote it (every key optional). */
export interface RunRecord<R> {
  elapsedSeconds?: number;
  run?: R;
  trainArgs?: readonly string[];
  /** The command line that trains the model from scratch. */
  command?: string;
}

/** The counter-based streams of `trainer_state.json`: every draw of step s is keyed by (seed, purpose, s). */
export function rngState(
  seed: number,
  step: number,
): { generator: 'philox4x32-10'; seed: number; nextStep: number } {
  return { generator: 'philox4x32-10', seed, nextStep: step };
}

/** The keys `trainer_state.json` of the classifier, text and autoencoder trainers begins with. */
export function stateHead<F extends string, C extends { readonly seed: number }>(
  format: F,
  t: { readonly step: number; readonly config: C },
): { format: F; version: 1; step: number; config: C; rng: ReturnType<typeof rngState> } {
  return {
    format,
    version: 1,
    step: t.step,
    config: t.config,
    rng: rngState(t.config.seed, t.step),
  };
}

/** Where the data loader stands after `step` steps of `batchSize` samples. */
export function dataPosition(
  step: number,
  stepsPerEpoch: number,
  batchSize: number,
): { stepsPerEpoch: number; epoch: number; position: number } {
  return {
    stepsPerEpoch,
    epoch: Math.floor(step / stepsPerEpoch),
    position: (step % stepsPerEpoch) * batchSize,
  };
}

/** The data record of a trainer on an image dataset split into training and held-out images. */
export interface SplitDataState {
  name: string;
  length: number;
  trainLength: number;
  heldOutLength: number;
  stepsPerEpoch: number;
  epoch: number;
  /** Index of the next training image within the epoch's order. */
  position: number;
}

/** The data record of a trainer on a split image dataset after `step` steps. */
export function splitDataState(t: {
  readonly dataset: Dataset;
  readonly trainSet: Dataset;
  readonly heldOutSet: Dataset | null;
  readonly loader: DataLoader;
  readonly step: number;
  readonly config: { readonly batchSize: number };
}): SplitDataState {
  return {
    name: t.dataset.name,
    length: t.dataset.length,
    trainLength: t.trainSet.length,
    heldOutLength: t.heldOutSet?.length ?? 0,
    ...dataPosition(t.step, t.loader.stepsPerEpoch, t.config.batchSize),
  };
}

/** The run settings, arguments and command that `trainer_state.json` ends with (those given). */
export function runState<R>(meta: RunRecord<R>): {
  run?: R;
  trainArgs?: string[];
  command?: string;
} {
  return {
    ...(meta.run !== undefined ? { run: meta.run } : {}),
    ...(meta.trainArgs !== undefined ? { trainArgs: [...meta.trainArgs] } : {}),
    ...(meta.command !== undefined ? { command: meta.command } : {}),
  };
}

/** The seconds of training, command and arguments that `sumi.json` ends with (those given). */
export function runInfo(meta: RunRecord<unknown>): {
  seconds?: number;
  command?: string;
  trainArgs?: string[];
} {
  return {
    ...(meta.elapsedSeconds !== undefined
      ? { seconds: Number(meta.elapsedSeconds.toFixed(1)) }
      : {}),
    ...(meta.command !== undefined ? { command: meta.command } : {}),
    ...(meta.trainArgs !== undefined ? { trainArgs: [...meta.trainArgs] } : {}),
  };
}

/** The `trainer_state.json` formats and the trainers that write them (named in refusals). */
export const TRAINER_STATE_OWNERS: Readonly<Record<string, string>> = {
  'sumi-trainer-state': 'a diffusion model (sumi train)',
  'sumi-classifier-trainer-state': 'a classifier (sumi train-classifier)',
  'sumi-text-trainer-state': 'a text model (sumi train --task text)',
  'sumi-vae-trainer-state': 'an autoencoder (sumi train-vae)',
};

export interface StateFormat {
  /** The `format` key this trainer writes. */
  format: string;
  /** How refusals name it: 'Sumi classifier trainer state'. */
  what: string;
  /** Foreign formats whose owner a refusal names. */
  named?: readonly string[];
  /** Further checks of a state of this format (false: refused). */
  check?: (state: Record<string, unknown>) => boolean;
}

/**
 * Reads `trainer_state.json` of a checkpoint directory and checks its format, version 1 and a
 * config; anything else is a TrainConfigError naming the file (and, for a state of another
 * trainer named in `f.named`, which one wrote it).
 */
export async function readStateFile(
  dir: string,
  f: StateFormat,
): Promise<Record<string, unknown> & { config: Record<string, unknown> }> {
  const path = join(dir, TRAINER_STATE);
  const st = (await readJsonFile(path, TrainConfigError)) as Record<string, unknown> | null;
  if (st?.format !== f.format || st.version !== 1 || !st.config || f.check?.(st) === false) {
    const format = typeof st?.format === 'string' ? st.format : '';
    const owner = f.named?.includes(format) === true ? TRAINER_STATE_OWNERS[format] : undefined;
    throw new TrainConfigError(
      `${path}: not a ${f.what} (version 1)${owner !== undefined ? `; it belongs to ${owner}` : ''}`,
    );
  }
  return st as Record<string, unknown> & { config: Record<string, unknown> };
}
