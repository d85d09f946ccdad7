/**
 * Training the classifier p_φ(y | x_t, t) of classifier guidance (Dhariwal & Nichol 2021, §4.1)
 * and of the evaluation metrics, with the diffusion trainer's machinery: counter-based random
 * streams, the DataLoader, AdamW with a warmup + decay schedule, atomic checkpoints that resume
 * bit for bit.
 *
 * Step s:  (x_0, y) = batch s of the DataLoader over the training split;
 *          x_0 shifted by (dy_b, dx_b) ~ U{−m..m}² from stream (seed, 'augment', s) (edges repeat),
 *          and, with `rotate` or `zoom`, turned by θ_b ~ U[−r, r] degrees and scaled by
 *          z_b ~ U[1 − z, 1 + z] about the centre (bilinear; the same stream, after the shifts);
 *          noise-aware: t_b = ⌊u_b T⌋ with u from stream (seed, 'timesteps', s), ε from stream
 *          (seed, 'noise', s), x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε on the diffusion model's DDPM schedule;
 *          clean: t = 0 and x = x_0;
 *          loss = −(1/B) Σ_b Σ_k q_bk log softmax(f_φ(x_t, t))_bk, q = (1 − λ) onehot(y) + λ/K
 *          (label smoothing λ); backward; clip the global gradient norm; AdamW at lr(s).
 *
 * The held-out split keeps round(F · n_c) images of every class c (at least one when F > 0) out of
 * training, chosen by stream (seed, 'holdout'); its accuracy is measured at each of `evalTimesteps`
 * with fixed noise from stream (seed, 'eval', batch).
 */
import { join } from 'node:path';

import {
  add,
  cpuBackend,
  Generator,
  logSoftmax,
  mul,
  noGrad,
  oneHot,
  rand,
  randn,
  sum,
  type Tensor,
  tensor,
  tidy,
} from '../../engine/index.js';
import { type AdamW, disposeAll, loadModule, type LrSchedule } from '../../nn/index.js';
import { EncoderClassifierModel, WEIGHTS_NAME } from '../../nn/models/index.js';
import { type Dataset, DataLoader, subsetDataset } from '../../data/index.js';
import { addNoise } from '../forward.js';
import { createScheduler } from '../samplers/index.js';
import { makeSchedule, type NoiseSchedule } from '../schedule.js';
import { type CheckpointFile, jsonBytes, SCHEDULER_CONFIG } from './checkpoint.js';
import {
  closingFiles,
  createOptimizer,
  finiteWeights,
  loadOptimizerState,
  modelFolderFiles,
  readStateFile,
  runInfo,
  type RunRecord,
  runState,
  type SplitDataState,
  splitDataState,
  stateHead,
} from './checkpoint-parts.js';
import { TrainerCounters } from './run-loop.js';
import {
  CLASSIFIER_DIR,
  type ClassifierRunSettings,
  type ClassifierTrainConfig,
  defaultClassifierTrainConfig,
} from './classifier-config.js';
import { checkImageShape, TrainConfigError } from './config.js';
import { DropoutStreams, streamSeed, streamUniforms } from './streams.js';
import { clipGradients, trainingTimesteps, updateIfFinite } from '../train-step.js';

/**
 * Splits a labelled dataset into training and held-out indices (each ascending): of the n_c
 * images of class c, round(fraction · n_c), at least one when fraction > 0 and n_c > 1, chosen
 * uniformly by a Fisher–Yates shuffle from stream (seed, 'holdout').
 */
export function holdoutSplit(
  dataset: Dataset,
  fraction: number,
  seed: number,
): { train: number[]; heldOut: number[] } {
  const all = Array.from({ length: dataset.length }, (_, i) => i);
  if (fraction === 0) return { train: all, heldOut: [] };
  const byClass = new Map<number, number[]>();
  for (const i of all) {
    const y = dataset.get(i).label;
    if (y === undefined) throw new TrainConfigError(`${dataset.name}: sample ${i} has no label`);
    let list = byClass.get(y);
    if (list === undefined) byClass.set(y, (list = []));
    list.push(i);
  }
  const uniforms = streamUniforms(dataset.length, seed, 'holdout');
  const held = new Set<number>();
  let at = 0;
  for (const y of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(y)!;
    const n = idx.length;
    const take = n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
    for (let i = n - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(uniforms[at++]! * (i + 1)));
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    for (let k = 0; k < take; k++) held.add(idx[k]!);
  }
  return { train: all.filter((i) => !held.has(i)), heldOut: all.filter((i) => held.has(i)) };
}

/**
 * Translates each image of x [B, C, H, W] by (dy_b, dx_b) pixels, repeating the edge pixels:
 * out[b, c, i, j] = x[b, c, clamp(i − dy_b), clamp(j − dx_b)].
 */
export function translateImages(
  x: Float32Array,
  shape: readonly [number, number, number, number],
  shifts: ArrayLike<number>,
): Float32Array {
  const [B, C, H, W] = shape;
  const out = new Float32Array(x.length);
  const clampTo = (v: number, n: number): number => Math.min(n - 1, Math.max(0, v));
  for (let b = 0; b < B; b++) {
    const dy = shifts[2 * b]!;
    const dx = shifts[2 * b + 1]!;
    for (let c = 0; c < C; c++) {
      const plane = (b * C + c) * H * W;
      for (let i = 0; i < H; i++) {
        const src = plane + clampTo(i - dy, H) * W;
        const dst = plane + i * W;
        for (let j = 0; j < W; j++) out[dst + j] = x[src + clampTo(j - dx, W)]!;
      }
    }
  }
  return out;
}

/** One image's random affine map: a rotation θ (radians) and a scale z about the centre, then a shift. */
export interface AffineParams {
  dy: number;
  dx: number;
  theta: number;
  zoom: number;
}

/**
 * Rotates each image of x [B, C, H, W] by θ_b and scales it by z_b about the centre
 * c = ((H − 1)/2, (W − 1)/2), then shifts it by (dy_b, dx_b): out(p) = x(c + R(−θ)(p − c − d)/z),
 * read bilinearly with the edge pixels repeated outside the image.
 */
export function affineImages(
  x: Float32Array,
  shape: readonly [number, number, number, number],
  params: readonly AffineParams[],
): Float32Array {
  const [B, C, H, W] = shape;
  const out = new Float32Array(x.length);
  const cy = (H - 1) / 2;
  const cx = (W - 1) / 2;
  const clampTo = (v: number, n: number): number => Math.min(n - 1, Math.max(0, v));
  for (let b = 0; b < B; b++) {
    const { dy, dx, theta, zoom } = params[b]!;
    const cos = Math.cos(theta) / zoom;
    const sin = Math.sin(theta) / zoom;
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        const u = i - cy - dy;
        const v = j - cx - dx;
        // R(−θ) = [[cos θ, sin θ], [−sin θ, cos θ]] in (row, column) coordinates.
        const sy = cy + cos * u + sin * v;
        const sx = cx - sin * u + cos * v;
        const y0 = Math.floor(sy);
        const x0 = Math.floor(sx);
        const fy = sy - y0;
        const fx = sx - x0;
        const [ya, yb] = [clampTo(y0, H), clampTo(y0 + 1, H)];
        const [xa, xb] = [clampTo(x0, W), clampTo(x0 + 1, W)];
        for (let c = 0; c < C; c++) {
          const plane = (b * C + c) * H * W;
          const top = (1 - fx) * x[plane + ya * W + xa]! + fx * x[plane + ya * W + xb]!;
          const bottom = (1 - fx) * x[plane + yb * W + xa]! + fx * x[plane + yb * W + xb]!;
          out[plane + i * W + j] = (1 - fy) * top + fy * bottom;
        }
      }
    }
  }
  return out;
}

/**
 * Cross-entropy with label smoothing λ, averaged over the batch: −(1/B) Σ_b Σ_k q_bk log p_bk,
 * p = softmax(logits), q = (1 − λ) onehot(y) + λ/K.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, labelSmoothing = 0): Tensor {
  const [B, K] = logits.shape as [number, number];
  const dtype = logits.dtype === 'float64' ? 'float64' : 'float32';
  const target = add(mul(oneHot(labels, K, dtype), 1 - labelSmoothing), labelSmoothing / K);
  return mul(sum(mul(target, logSoftmax(logits, -1))), -1 / B);
}

export interface ClassifierStepStats {
  /** Steps completed. */
  step: number;
  loss: number;
  /** Fraction of the batch classified right (before the update). */
  accuracy: number;
  gradNorm: number | null;
  lr: number;
  epoch: number;
}

/** Accuracy and mean cross-entropy of the held-out images at one timestep. */
export interface HeldOutScore {
  t: number;
  accuracy: number;
  loss: number;
}

export interface HeldOutResult {
  /** Training steps of the weights measured. */
  step: number;
  count: number;
  scores: HeldOutScore[];
}

/** `sumi.json` of a classifier folder. */
export interface ClassifierInfo {
  format: 'sumi-classifier';
  version: 1;
  imageSize: number;
  channels: number;
  numClasses: number;
  classNames?: string[];
  /** Trained on noisy x_t (for guidance) or on clean images (for evaluation). */
  noiseAware: boolean;
  /** T of the schedule a noise-aware classifier was trained on. */
  numTrainTimesteps: number | null;
  data: string;
  step: number;
  parameters: number;
  heldOut: (HeldOutResult & { fraction: number }) | null;
  /** Seconds of training. */
  seconds?: number;
  command?: string;
  trainArgs?: string[];
}

/** What `trainer_state.json` of a classifier checkpoint holds. */
export interface ClassifierTrainerState {
  format: 'sumi-classifier-trainer-state';
  version: 1;
  step: number;
  config: ClassifierTrainConfig;
  rng: { generator: 'philox4x32-10'; seed: number; nextStep: number };
  data: SplitDataState;
  heldOut: HeldOutResult | null;
  elapsedSeconds: number;
  backend: string;
  run?: ClassifierRunSettings;
  trainArgs?: string[];
  command?: string;
}

export type ClassifierCheckpointMeta = RunRecord<ClassifierRunSettings>;

const EVAL_BATCH = 250;

export class ClassifierTrainer extends TrainerCounters<HeldOutResult> {
  readonly config: ClassifierTrainConfig;
  readonly dataset: Dataset;
  readonly trainSet: Dataset;
  readonly heldOutSet: Dataset | null;
  readonly model: EncoderClassifierModel;
  readonly optimizer: AdamW;
  readonly loader: DataLoader;
  /** The diffusion schedule of noise-aware training; null for a clean classifier. */
  readonly schedule: NoiseSchedule | null;
  /** The learning rate of each step. */
  readonly lrAt: LrSchedule;
  readonly #dropouts: DropoutStreams;

  /** A fresh trainer (initial weights from stream (seed, 'init')) on the default backend. */
  constructor(config: ClassifierTrainConfig, dataset: Dataset) {
    super();
    checkImageShape(dataset, config);
    if (dataset.numClasses !== config.numClasses) {
      throw new TrainConfigError(
        `${dataset.name} has ${dataset.numClasses ?? 'no'} classes, the config ${config.numClasses}`,
      );
    }
    this.config = config;
    this.dataset = dataset;
    const s = config.seed;
    const split = holdoutSplit(dataset, config.holdout, s);
    this.trainSet = subsetDataset(dataset, split.train);
    this.heldOutSet = split.heldOut.length > 0 ? subsetDataset(dataset, split.heldOut) : null;
    this.model = new EncoderClassifierModel(config.model, {
      generator: new Generator(streamSeed(s, 'init')),
      dropoutSeed: streamSeed(s, 'dropout') % 2 ** 32,
    });
    this.#dropouts = new DropoutStreams([this.model]);
    ({ optimizer: this.optimizer, lr: this.lrAt } = createOptimizer(this.model, config));
    this.loader = new DataLoader(this.trainSet, {
      batchSize: config.batchSize,
      seed: streamSeed(s, 'data'),
      flip: config.flip,
    });
    this.schedule =
      config.scheduler === null
        ? null
        : makeSchedule(Float64Array.from(createScheduler('DDPMScheduler', config.scheduler).betas));
  }

  /**
   * x_0 of a batch with the step's random shifts, rotations and scalings, all drawn from stream
   * (seed, 'augment', s): 2B uniforms for the shifts, then (with rotate or zoom) the next 2B for
   * θ_b and z_b. Without rotate and zoom the second draw is skipped, so shift-only runs keep the
   * integer translation of earlier versions bit for bit.
   */
  async #augmented(x0: Tensor, step: number): Promise<Tensor> {
    const { shift: m, rotate, zoom } = this.config;
    if (m === 0 && rotate === 0 && zoom === 0) return x0;
    const B = x0.shape[0]!;
    const stream = new Generator(streamSeed(this.config.seed, 'augment', step));
    const uniforms = (): Float64Array => {
      const u = rand([2 * B], { generator: stream, dtype: 'float64', backend: cpuBackend() });
      const v = Float64Array.from(u.dataSync());
      u.dispose();
      return v;
    };
    const shifts = Array.from(uniforms(), (v) => Math.min(2 * m, Math.floor(v * (2 * m + 1))) - m);
    const shape = x0.shape as [number, number, number, number];
    const pixels = (await x0.data()) as Float32Array;
    let moved: Float32Array;
    if (rotate === 0 && zoom === 0) {
      moved = translateImages(pixels, shape, shifts);
    } else {
      const u = uniforms();
      const params = Array.from({ length: B }, (_, b) => ({
        dy: shifts[2 * b]!,
        dx: shifts[2 * b + 1]!,
        // θ_b ~ U[−r, r] degrees, z_b ~ U[1 − z, 1 + z].
        theta: ((2 * u[2 * b]! - 1) * rotate * Math.PI) / 180,
        zoom: 1 + (2 * u[2 * b + 1]! - 1) * zoom,
      }));
      moved = affineImages(pixels, shape, params);
    }
    const out = tensor(moved, shape, { dtype: x0.dtype, backend: x0.backend });
    x0.dispose();
    return out;
  }

  /** The training timesteps of step s (all 0 for a clean classifier). */
  #timesteps(step: number, batch: number): number[] {
    if (this.schedule === null) return new Array<number>(batch).fill(0);
    return trainingTimesteps(this.config.seed, step, batch, this.schedule.numTrainTimesteps);
  }

  /** Runs optimizer step `this.step` and advances. Throws NonFiniteError before a bad update. */
  async trainStep(): Promise<ClassifierStepStats> {
    const s = this.step;
    const cfg = this.config;
    this.#dropouts.seek(s);
    const lr = this.lrAt(s);
    this.optimizer.lr = lr;
    const batch = this.loader.batchAt(s);
    if (batch.labels === undefined) throw new Error(`${this.dataset.name}: batch without labels`);
    const labels = batch.labels;
    const x0 = await this.#augmented(batch.x, s);
    const B = x0.shape[0]!;
    const timesteps = this.#timesteps(s, B);
    let out: { loss: Tensor; logits: Tensor; gradNorm: Tensor | null };
    try {
      out = tidy(() => {
        let x = x0;
        if (this.schedule !== null) {
          const noise = randn(x0.shape, {
            seed: streamSeed(cfg.seed, 'noise', s),
            dtype: x0.dtype,
            backend: x0.backend,
          });
          x = addNoise(this.schedule, x0, noise, timesteps);
        }
        const logits = this.model.forward(x, timesteps);
        const loss = crossEntropy(logits, labels, cfg.labelSmoothing);
        loss.backward();
        const gradNorm = clipGradients(this.model, cfg.maxGradNorm);
        return { loss: loss.detach(), logits: logits.detach(), gradNorm };
      });
    } finally {
      x0.dispose();
    }
    const loss = (await out.loss.data())[0]!;
    const gradNorm = out.gradNorm === null ? null : (await out.gradNorm.data())[0]!;
    const correct = countCorrect(await out.logits.data(), await labels.data(), cfg.numClasses);
    labels.dispose();
    out.loss.dispose();
    out.logits.dispose();
    out.gradNorm?.dispose();
    updateIfFinite(this.optimizer, s, { 'the loss': loss, 'the gradient norm': gradNorm }, () =>
      this.model.zeroGrad(),
    );
    this.step = s + 1;
    return { step: this.step, loss, accuracy: correct / B, gradNorm, lr, epoch: batch.epoch };
  }

  /**
   * Accuracy and cross-entropy on the held-out images at each of `config.evalTimesteps` (null
   * without a held-out split). Leaves the training state as it was.
   */
  async evaluateHeldOut(): Promise<HeldOutResult | null> {
    const set = this.heldOutSet;
    if (set === null) return null;
    const loader = new DataLoader(set, {
      batchSize: Math.min(EVAL_BATCH, set.length),
      shuffle: false,
      dropLast: false,
    });
    const ts = this.config.evalTimesteps;
    const correct = new Array<number>(ts.length).fill(0);
    const losses = new Array<number>(ts.length).fill(0);
    this.model.eval();
    try {
      for (let b = 0; b < loader.stepsPerEpoch; b++) {
        const batch = loader.batchAt(b);
        const labels = batch.labels!;
        const ys = await labels.data();
        const n = ys.length;
        for (let k = 0; k < ts.length; k++) {
          const t = ts[k]!;
          const { logits, loss } = noGrad(() =>
            tidy(() => {
              let x = batch.x;
              if (this.schedule !== null) {
                const noise = randn(x.shape, {
                  seed: streamSeed(this.config.seed, 'eval', b),
                  dtype: x.dtype,
                  backend: x.backend,
                });
                x = addNoise(this.schedule, x, noise, new Array<number>(n).fill(t));
              }
              const lg = this.model.forward(x, t);
              return { logits: lg, loss: crossEntropy(lg, labels) };
            }),
          );
          correct[k]! += countCorrect(await logits.data(), ys, this.config.numClasses);
          losses[k]! += (await loss.data())[0]! * n;
          logits.dispose();
          loss.dispose();
        }
        batch.x.dispose();
        labels.dispose();
      }
    } finally {
      this.model.train();
    }
    this.heldOut = {
      step: this.step,
      count: set.length,
      scores: ts.map((t, k) => ({
        t,
        accuracy: correct[k]! / set.length,
        loss: losses[k]! / set.length,
      })),
    };
    return this.heldOut;
  }

  /** What `sumi.json` says about the classifier. */
  info(meta: ClassifierCheckpointMeta = {}): ClassifierInfo {
    const c = this.config;
    return {
      format: 'sumi-classifier',
      version: 1,
      imageSize: c.imageSize,
      channels: c.channels,
      numClasses: c.numClasses,
      ...(this.dataset.classNames ? { classNames: [...this.dataset.classNames] } : {}),
      noiseAware: c.noiseAware,
      numTrainTimesteps: this.schedule?.numTrainTimesteps ?? null,
      data: c.data,
      step: this.step,
      parameters: this.model.numParameters(),
      heldOut: this.heldOut === null ? null : { fraction: c.holdout, ...this.heldOut },
      ...runInfo(meta),
    };
  }

  state(meta: ClassifierCheckpointMeta = {}): ClassifierTrainerState {
    return {
      ...stateHead('sumi-classifier-trainer-state', this),
      data: splitDataState(this),
      heldOut: this.heldOut,
      elapsedSeconds: meta.elapsedSeconds ?? this.elapsedBefore,
      backend: this.model.convIn.weight.backend.name,
      ...runState(meta),
    };
  }

  /**
   * The files of a checkpoint: classifier/ (config.json + weights), scheduler/ (noise-aware),
   * sumi.json, optimizer.safetensors, trainer_state.json last. Throws NonFiniteError when any
   * weight is NaN or infinite.
   */
  async checkpointFiles(meta: ClassifierCheckpointMeta = {}): Promise<CheckpointFile[]> {
    const weights = await finiteWeights(this.model.namedParameters(), this.step);
    return [
      ...modelFolderFiles(CLASSIFIER_DIR, this.model.configJson(), WEIGHTS_NAME, weights),
      ...(this.config.scheduler === null
        ? []
        : [{ path: SCHEDULER_CONFIG, bytes: jsonBytes(this.config.scheduler) }]),
      ...(await closingFiles(this.optimizer, this.info(meta), this.state(meta))),
    ];
  }

  /** Loads weights, optimizer state, step and the last held-out score from a checkpoint. */
  async loadCheckpoint(dir: string, state: ClassifierTrainerState): Promise<void> {
    await loadModule(this.model, join(dir, CLASSIFIER_DIR, WEIGHTS_NAME));
    await loadOptimizerState(this.optimizer, dir);
    this.resumeCounters(state);
  }

  /** Frees parameters and optimizer state. */
  dispose(): void {
    this.optimizer.dispose();
    disposeAll(this.model.stateDict());
  }
}

/** Number of rows of `logits` [B, K] whose largest entry is at the label (first on ties). */
function countCorrect(logits: ArrayLike<number>, labels: ArrayLike<number>, k: number): number {
  let n = 0;
  for (let b = 0; b < labels.length; b++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[b * k + j]! > logits[b * k + best]!) best = j;
    if (best === labels[b]) n++;
  }
  return n;
}

/** Reads and checks `trainer_state.json` of a classifier checkpoint. */
export async function readClassifierTrainerState(dir: string): Promise<ClassifierTrainerState> {
  const st = (await readStateFile(dir, {
    format: 'sumi-classifier-trainer-state',
    what: 'Sumi classifier trainer state',
    named: ['sumi-trainer-state'],
  })) as unknown as ClassifierTrainerState;
  // Keys added since the checkpoint was written take their defaults.
  return { ...st, config: { ...defaultClassifierTrainConfig, ...st.config } };
}
