/**
 * Training a TimeGrad forecaster on a series, with checkpoints that resume exactly, and the
 * forecaster's folder on disk:
 *
 *   <out>/config.json                            TimeGradModel config (diffusers layout)
 *   <out>/diffusion_pytorch_model.safetensors    the weights (F32)
 *   <out>/scheduler_config.json                  the DDPMScheduler config (K, β schedule)
 *   <out>/forecast.json                          the data it was trained on, the split, the command
 *   <out>/checkpoint/                            the last checkpoint (the same files, the optimizer
 *                                                state and trainer_state.json; see checkpoint.ts)
 *
 * Every random draw of step s comes from (seed, purpose, s) (streams.ts), so a run stopped after
 * a checkpoint and resumed draws what an uninterrupted run draws.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { Generator, rand, tidy } from '../engine/index.js';
import {
  forecastOrigins,
  historyLength,
  type ScalingKind,
  splitByTime,
  type TimeSplit,
  timeFeaturesFor,
  type TimeSeries,
  type WindowSpec,
} from '../data/series.js';
import { parseConfigJson } from '../nn/models/create.js';
import { writeFileAtomic, writeTextAtomic } from '../nn/models/io.js';
import { resolveConfig } from '../nn/models/config.js';
import { TIMEGRAD_SCHEMA, TimeGradModel, type TimeGradConfig } from '../nn/models/timegrad.js';
import { AdamW, clipGradNorm } from '../nn/optim.js';
import { serializeSafetensors } from '../nn/safetensors.js';
import { disposeAll, firstNonFinite, tensorsToWrite } from '../nn/state-dict.js';
import { loadModule, loadTensors } from '../nn/state-io.js';
import { forecastLoss, scaledWindow, TIMEGRAD_SCHEDULER_CONFIG } from './forecast.js';
import { makeSchedule, type NoiseSchedule } from './schedule.js';
import {
  type CheckpointFile,
  findCheckpoint,
  jsonBytes,
  writeCheckpointDir,
} from './trainer/checkpoint.js';
import { OPTIMIZER_FILE, TRAINER_STATE } from './trainer/checkpoint.js';
import { streamSeed } from './trainer/streams.js';
import { NonFiniteError } from './trainer/trainer.js';

export const FORECAST_INFO = 'forecast.json';
export const FORECAST_SCHEDULER = 'scheduler_config.json';
const MODEL_CONFIG = 'config.json';
const MODEL_WEIGHTS = 'diffusion_pytorch_model.safetensors';

/** A problem with a forecast request or folder: one line naming the value or the file. */
export class ForecastError extends Error {
  override name = 'ForecastError';
}

/** The fractions of the rows held out at the end (validation, then test). */
export const DEFAULT_SPLIT = { validation: 0.1, test: 0.2 } as const;

export interface ForecastTrainConfig {
  /** What --data said (a file or a dataset name), and how the series was read. */
  data: string;
  targets: string[];
  timestamp: string | null;
  fill: 'none' | 'forward';
  context: number;
  horizon: number;
  lags: number[];
  scaling: ScalingKind;
  steps: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Steps between checkpoints. */
  saveEvery: number;
  /** Rows of each batch that ε_θ scores (see ForecastLossOptions.maxRows); null: all. */
  maxRows: number | null;
  /** Model sizes (TimeGradConfig keys) over the defaults. */
  model: Partial<TimeGradConfig>;
}

/** What a forecaster folder records beside its weights (forecast.json). */
export interface ForecastInfo {
  format: 'sumi-forecast';
  version: 1;
  data: string;
  targets: string[];
  timestamp: string | null;
  fill: 'none' | 'forward';
  split: { validation: number; test: number };
  steps: number;
  trainLoss: number | null;
  validationLoss: number | null;
  command?: string;
}

interface ForecastTrainerState {
  format: 'sumi-forecast-trainer-state';
  version: 1;
  step: number;
  config: ForecastTrainConfig;
  losses: number[];
  elapsedSeconds: number;
}

/** The model config of a run: the window, the series' time features and the sizes. */
export function forecastModelConfig(s: TimeSeries, c: ForecastTrainConfig): TimeGradConfig {
  return resolveConfig(TIMEGRAD_SCHEMA, {
    ...c.model,
    target_dim: s.targets.length,
    context_length: c.context,
    prediction_length: c.horizon,
    lags_seq: c.lags,
    time_features: timeFeaturesFor(s.freq),
    scaling: c.scaling,
    freq: s.freq,
  }).config;
}

export function windowSpecOf(
  c: Pick<TimeGradConfig, 'context_length' | 'prediction_length' | 'lags_seq'>,
): WindowSpec {
  return { context: c.context_length, horizon: c.prediction_length, lags: c.lags_seq };
}

export const scheduleOf = (cfg: Readonly<Record<string, unknown>>): NoiseSchedule =>
  makeSchedule({
    numTrainTimesteps: cfg.num_train_timesteps as number,
    betaSchedule: 'linear',
    betaStart: cfg.beta_start as number,
    betaEnd: cfg.beta_end as number,
  });

export interface ForecastStepInfo {
  step: number;
  loss: number;
}

export interface TrainForecasterOptions {
  /** After each step. */
  onStep?: (info: ForecastStepInfo) => void;
  /** After each checkpoint, with the validation loss. */
  onSave?: (info: { step: number; validationLoss: number }) => void;
  /** The command line, recorded in forecast.json. */
  command?: string;
  /** Stop (after a checkpoint) when set. */
  signal?: AbortSignal;
}

/**
 * What differs between the run of a checkpoint and a new one, other than the number of steps:
 * the resolved model config and every other setting, each as `key: was → now`.
 */
function runDifferences(
  s: TimeSeries,
  was: ForecastTrainConfig,
  now: ForecastTrainConfig,
): string[] {
  const flat = (c: ForecastTrainConfig): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(c)) {
      if (k !== 'model' && k !== 'steps') out[k] = JSON.stringify(v);
    }
    for (const [k, v] of Object.entries(forecastModelConfig(s, c))) out[k] = JSON.stringify(v);
    return out;
  };
  const a = flat(was);
  const b = flat(now);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((k) => a[k] !== b[k])
    .map((k) => `${k}: ${a[k] ?? 'unset'} → ${b[k] ?? 'unset'}`);
}

/** B training origins of step s, uniformly over the training part (with replacement). */
function batchOrigins(origins: readonly number[], B: number, seed: number, step: number): number[] {
  const g = new Generator(streamSeed(seed, 'data', step));
  const u = tidy(() => rand([B], { generator: g, dtype: 'float64' }).dataSync());
  return Array.from(
    u,
    (v) => origins[Math.min(origins.length - 1, Math.floor(v * origins.length))]!,
  );
}

/** The mean DDPM loss over the validation origins, with a fixed noise stream. */
export function validationLoss(
  model: TimeGradModel,
  schedule: NoiseSchedule,
  s: TimeSeries,
  split: TimeSplit,
  seed: number,
): number {
  const c = model.config;
  const w = windowSpecOf(c);
  const origins = forecastOrigins(split.trainEnd, split.validationEnd, w, 1);
  if (origins.length === 0) return NaN;
  return tidy(() => {
    const windows = origins.map((o) => scaledWindow(s, c, o));
    return forecastLoss(model, schedule, s, windows, { seed: streamSeed(seed, 'eval') }).itemSync();
  });
}

async function modelFiles(model: TimeGradModel, prefix = ''): Promise<CheckpointFile[]> {
  const entries = await tensorsToWrite(model.stateDict(), 'F32');
  const bad = firstNonFinite(entries);
  if (bad !== null) throw new NonFiniteError(0, `the weight '${bad}'`, NaN);
  return [
    { path: join(prefix, MODEL_CONFIG), bytes: new TextEncoder().encode(model.configJson()) },
    { path: join(prefix, MODEL_WEIGHTS), bytes: serializeSafetensors(entries, { format: 'pt' }) },
    { path: join(prefix, FORECAST_SCHEDULER), bytes: jsonBytes(TIMEGRAD_SCHEDULER_CONFIG) },
  ];
}

/**
 * Trains (or resumes, when `<out>/checkpoint` holds a run of the same config) and writes the
 * forecaster folder. Returns the model (in eval mode) and the final losses.
 */
export async function trainForecaster(
  s: TimeSeries,
  config: ForecastTrainConfig,
  out: string,
  opts: TrainForecasterOptions = {},
): Promise<{ model: TimeGradModel; step: number; trainLoss: number; validationLoss: number }> {
  const mc = forecastModelConfig(s, config);
  const split = splitByTime(s, windowSpecOf(mc), DEFAULT_SPLIT);
  const origins = forecastOrigins(
    historyLength(windowSpecOf(mc)),
    split.trainEnd,
    windowSpecOf(mc),
    1,
  );
  const model = new TimeGradModel(mc, {
    generator: new Generator(streamSeed(config.seed, 'init')),
  });
  const optimizer = new AdamW(model, { lr: config.lr, weightDecay: 1e-8 });
  const schedule = scheduleOf(TIMEGRAD_SCHEDULER_CONFIG);
  let step = 0;
  let losses: number[] = [];
  let elapsedBefore = 0;
  const ckpt = await findCheckpoint(out);
  if (ckpt !== null) {
    const st = JSON.parse(
      await readFile(join(ckpt, TRAINER_STATE), 'utf8'),
    ) as ForecastTrainerState;
    if (st.format !== 'sumi-forecast-trainer-state') {
      throw new ForecastError(`${ckpt}: not a forecaster checkpoint (format ${String(st.format)})`);
    }
    const diff = runDifferences(s, st.config, config);
    if (diff.length > 0) {
      throw new ForecastError(
        `${ckpt}: the checkpoint is of another run (${diff.join('; ')}); use another --out or the same options`,
      );
    }
    await loadModule(model, join(ckpt, MODEL_WEIGHTS));
    const osd = await loadTensors(join(ckpt, OPTIMIZER_FILE));
    try {
      await optimizer.loadStateDict(osd, { source: join(ckpt, OPTIMIZER_FILE) });
    } finally {
      disposeAll(osd);
    }
    step = st.step;
    losses = st.losses;
    elapsedBefore = st.elapsedSeconds;
  }
  const started = performance.now();
  const elapsed = (): number => elapsedBefore + (performance.now() - started) / 1000;
  let vloss = NaN;
  const save = async (): Promise<void> => {
    model.eval();
    vloss = validationLoss(model, schedule, s, split, config.seed);
    model.train();
    const opt = optimizer.stateDict();
    const optEntries = await tensorsToWrite(opt);
    disposeAll(opt);
    const state: ForecastTrainerState = {
      format: 'sumi-forecast-trainer-state',
      version: 1,
      step,
      config,
      losses,
      elapsedSeconds: elapsed(),
    };
    await writeCheckpointDir(out, [
      ...(await modelFiles(model)),
      { path: OPTIMIZER_FILE, bytes: serializeSafetensors(optEntries, { format: 'pt' }) },
      { path: TRAINER_STATE, bytes: jsonBytes(state) },
    ]);
    opts.onSave?.({ step, validationLoss: vloss });
  };
  model.train();
  while (step < config.steps && opts.signal?.aborted !== true) {
    const loss = tidy(() => {
      const batch = batchOrigins(origins, config.batchSize, config.seed, step);
      const windows = batch.map((o) => scaledWindow(s, mc, o));
      const l = forecastLoss(model, schedule, s, windows, {
        seed: streamSeed(config.seed, 'noise', step),
        maxRows: config.maxRows ?? undefined,
      });
      l.backward();
      clipGradNorm(model, 10);
      optimizer.step();
      model.zeroGrad();
      return l.itemSync();
    });
    if (!Number.isFinite(loss)) throw new NonFiniteError(step, 'the loss', loss);
    losses.push(loss);
    step++;
    opts.onStep?.({ step, loss });
    if (step % config.saveEvery === 0 || step === config.steps) await save();
  }
  if (step < config.steps) await save();
  // A run resumed at its last step trains nothing: its validation loss is measured here.
  if (Number.isNaN(vloss)) vloss = validationLoss(model.eval(), schedule, s, split, config.seed);
  const recent = losses.slice(-50);
  const trainLoss = recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length);
  for (const f of await modelFiles(model)) await writeFileAtomic(join(out, f.path), f.bytes);
  const info: ForecastInfo = {
    format: 'sumi-forecast',
    version: 1,
    data: config.data,
    targets: config.targets,
    timestamp: config.timestamp,
    fill: config.fill,
    split: { ...DEFAULT_SPLIT },
    steps: step,
    trainLoss,
    validationLoss: Number.isFinite(vloss) ? vloss : null,
    ...(opts.command !== undefined ? { command: opts.command } : {}),
  };
  await writeTextAtomic(join(out, FORECAST_INFO), `${JSON.stringify(info, null, 2)}\n`);
  return { model: model.eval(), step, trainLoss, validationLoss: vloss };
}

/** A forecaster folder: the model (eval mode), its scheduler config and forecast.json. */
export async function loadForecaster(dir: string): Promise<{
  model: TimeGradModel;
  schedulerConfig: Record<string, unknown>;
  info: ForecastInfo;
}> {
  const read = async (name: string): Promise<Record<string, unknown>> => {
    const path = join(dir, name);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch {
      throw new ForecastError(
        `${dir}: no ${name} (not a forecaster folder written by sumi train --task forecast)`,
      );
    }
    return parseConfigJson(bytes, path);
  };
  const config = await read(MODEL_CONFIG);
  if (config._class_name !== 'TimeGradModel') {
    throw new ForecastError(
      `${join(dir, MODEL_CONFIG)}: a ${String(config._class_name)}, not a TimeGradModel`,
    );
  }
  const schedulerConfig = await read(FORECAST_SCHEDULER);
  const info = (await read(FORECAST_INFO)) as unknown as ForecastInfo;
  const model = new TimeGradModel(config);
  await loadModule(model, join(dir, MODEL_WEIGHTS));
  return { model: model.eval(), schedulerConfig, info };
}
