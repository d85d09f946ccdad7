/**
 * The evaluation classifier and the real reference set of the metrics.
 *
 * Every distribution metric compares generated images with real ones in the feature space of a
 * classifier. Those real images must be ones the classifier did not train on, or the features of
 * the reference would be those of memorised training images. The reference set is therefore:
 *
 * - `mnist-full`, `fashion-mnist`: the official test split (10,000 images); `sumi
 *   train-classifier` trains on the train split.
 * - a dataset the classifier was trained on with `--holdout F`: exactly the images that training
 *   held out, recomputed with the trainer's own `holdoutSplit(dataset, F, seed)` (round(F · n_c)
 *   images of every class c, drawn from the stream (seed, 'holdout')).
 * - otherwise the whole dataset, with a note saying whether the classifier saw it.
 *
 * The floor is the FD that real images get against the reference set. When the classifier held out
 * part of a train split (`--holdout F` on mnist-full or fashion-mnist), it is n of those images
 * (the model's sample count, at most all of them): real, unseen by the classifier, not in the
 * reference, scored at the same n as the model. Otherwise it is FD between two halves of the
 * reference set.
 *
 * A reference set's features are cached on disk (stats-cache.ts) under the classifier's hash, the
 * dataset, its size, the split and the number of images, in `defaultCacheDir()`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import {
  type Dataset,
  DataLoader,
  loadDataset,
  SPLIT_DATASETS,
  subsetDataset,
} from '../data/index.js';
import {
  type ClassifierInfo,
  holdoutSplit,
  type LoadedClassifier,
  readClassifierTrainerState,
  TRAINER_STATE,
} from '../diffusion/index.js';
import { noGrad, type Tensor, tensor, tidy } from '../engine/index.js';
import type { EncoderClassifierModel } from '../nn/models/index.js';
import {
  type FeatureMatrix,
  featureMatrix,
  type FeatureStats,
  featureStats,
  frechetDistance,
  loadOrComputeStats,
  precisionRecall,
} from './metrics/index.js';

/** Bad input to an evaluation (mismatched shapes, too few samples, ...): exit code 2 in the CLI. */
export class EvalInputError extends Error {
  override name = 'EvalInputError';
}

/**
 * The stats cache folder: `$SUMI_CACHE/stats`, else `$XDG_CACHE_HOME/sumi/stats`, else
 * `~/.cache/sumi/stats`.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const own = env.SUMI_CACHE;
  if (own !== undefined && own !== '') return join(own, 'stats');
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache');
  return join(base, 'sumi', 'stats');
}

/** What the classifier was trained on, as far as its folder tells. */
export interface ClassifierTrainingData {
  /** The dataset spec given to `sumi train-classifier --data`. */
  data: string;
  /** The held-out fraction F of every class (0: it trained on every image). */
  holdout: number;
  /** The seed of the held-out split. */
  seed: number;
  /** Where this came from (trainer_state.json, or sumi.json and its recorded arguments). */
  source: string;
}

/** An evaluation classifier: the model, the image shape it takes and a hash of its weights. */
export interface EvalClassifier {
  model: EncoderClassifierModel;
  /** [C, H, W] of its inputs. */
  shape: readonly [number, number, number];
  numClasses: number;
  /** Width F of the pooled penultimate features. */
  numFeatures: number;
  /** SHA-256 of its config and weights (the stats cache key). */
  hash: string;
  info: ClassifierInfo | null;
  training: ClassifierTrainingData | null;
  root: string;
}

/** The value of `--name V` or `--name=V` in recorded arguments (the last one wins). */
function argValue(args: readonly string[] | undefined, name: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < (args ?? []).length; i++) {
    const a = args![i]!;
    if (a === `--${name}`) v = args![i + 1];
    else if (a.startsWith(`--${name}=`)) v = a.slice(name.length + 3);
  }
  return v;
}

/**
 * The classifier's training data and held-out split: from the checkpoint's trainer_state.json
 * when the folder has one, else from sumi.json (the held-out fraction, and the seed among the
 * recorded training arguments, 0 when absent: the trainer's default).
 */
export async function classifierTrainingData(
  loaded: Pick<LoadedClassifier, 'info' | 'root'>,
): Promise<ClassifierTrainingData | null> {
  if (existsSync(join(loaded.root, TRAINER_STATE))) {
    const st = await readClassifierTrainerState(loaded.root);
    return {
      data: st.config.data,
      holdout: st.config.holdout,
      seed: st.config.seed,
      source: join(loaded.root, TRAINER_STATE),
    };
  }
  const info = loaded.info;
  if (info === null) return null;
  const holdout = info.heldOut?.fraction ?? Number(argValue(info.trainArgs, 'holdout') ?? 0);
  const seed = Number(argValue(info.trainArgs, 'seed') ?? 0);
  if (!Number.isFinite(holdout) || !Number.isSafeInteger(seed)) return null;
  return { data: info.data, holdout, seed, source: join(loaded.root, 'sumi.json') };
}

/** SHA-256 over the config and, per parameter, its name, shape and float32 values. */
export function classifierHash(model: EncoderClassifierModel): string {
  const h = createHash('sha256').update(model.configJson());
  for (const [name, p] of model.namedParameters()) {
    const d = p.dataSync();
    const f = d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>);
    h.update(`${name}[${p.shape.join(',')}]`).update(
      new Uint8Array(f.buffer, f.byteOffset, f.byteLength),
    );
  }
  return `sha256:${h.digest('hex')}`;
}

export function formatShape(s: readonly number[]): string {
  return s.join('x');
}

/** A loaded classifier folder, prepared for evaluation. */
export async function evalClassifier(loaded: LoadedClassifier): Promise<EvalClassifier> {
  const model = loaded.classifier;
  const c = model.config;
  const size = c.sample_size ?? loaded.info?.imageSize ?? null;
  if (size === null) {
    throw new EvalInputError(
      `${loaded.root}: the classifier records no image size (sample_size in its config.json)`,
    );
  }
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  return {
    model,
    shape: [c.in_channels, h, w],
    numClasses: model.numClasses,
    numFeatures: model.numFeatures,
    hash: classifierHash(model),
    info: loaded.info,
    training: await classifierTrainingData(loaded),
    root: loaded.root,
  };
}

/** Throws an EvalInputError unless images of shape [C, H, W] fit the classifier. */
export function checkFits(c: EvalClassifier, shape: readonly number[], what: string): void {
  if (shape.length !== 3 || shape.some((v, i) => v !== c.shape[i])) {
    throw new EvalInputError(
      `${what} are ${formatShape(shape)} images; the classifier takes ${formatShape(c.shape)}`,
    );
  }
}

/** [C, H, W] of the named datasets as they come, before any resizing. */
const NATIVE_SHAPE: Readonly<Record<string, readonly [number, number, number]>> = {
  mnist: [1, 28, 28],
  'mnist-full': [1, 28, 28],
  'fashion-mnist': [1, 28, 28],
};

/**
 * A dataset at the image shape a network takes. A named dataset (mnist, mnist-full,
 * fashion-mnist) of another native shape is resized only when that network was trained on it
 * (`trainedOn`), i.e. saw it resized the same way; otherwise the mismatch is an error. Folders
 * and emoji have no native size and are loaded at the network's.
 */
export function loadDataFor(
  spec: string,
  shape: readonly [number, number, number],
  trainedOn: string | null,
  what: string,
  opts: { split?: 'train' | 'test' } = {},
): Dataset {
  const [c, h, w] = shape;
  if (c !== 1 && c !== 3) throw new EvalInputError(`${what} takes ${c}-channel images`);
  const native = NATIVE_SHAPE[spec];
  if (native !== undefined && native.some((v, i) => v !== shape[i]) && trainedOn !== spec) {
    throw new EvalInputError(
      `${what} takes ${formatShape(shape)} images; ${spec} has ${formatShape(native)}` +
        (trainedOn === null ? '' : ` (and ${what} was trained on ${trainedOn}, not ${spec})`),
    );
  }
  try {
    return loadDataset(spec, { size: [h, w], channels: c, ...opts });
  } catch (e) {
    throw new EvalInputError(`--data ${spec}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Which real images are the reference set, and why. */
export interface ReferenceSplit {
  /** The dataset spec. */
  data: string;
  kind: 'test' | 'holdout' | 'all';
  /** The split as the stats cache key names it. */
  key: string;
  /** Indices of the reference images in `dataset`. */
  indices: number[];
  /** One line for people. */
  description: string;
  /** Whether the classifier trained on these images (null: unknown). */
  seenByClassifier: boolean | null;
}

/**
 * Real images for the floor: unseen by the classifier and not in the reference set (the images
 * the classifier held out of a train split).
 */
export interface FloorImages {
  dataset: Dataset;
  /** Indices in `dataset`. */
  indices: number[];
  /** The split as the stats cache key names it. */
  key: string;
  /** One line for people. */
  description: string;
}

/** The reference set of a dataset for a classifier (see the module comment). */
export function referenceSplit(
  spec: string,
  c: EvalClassifier,
): { dataset: Dataset; split: ReferenceSplit; floorImages: FloorImages | null } {
  const training = c.training;
  const trainedOn = training?.data ?? c.info?.data ?? null;
  const heldOut = training !== null && training.data === spec && training.holdout > 0;
  if (SPLIT_DATASETS.includes(spec)) {
    const dataset = loadDataFor(spec, c.shape, trainedOn, 'the classifier', { split: 'test' });
    let floorImages: FloorImages | null = null;
    if (heldOut) {
      const train = loadDataFor(spec, c.shape, trainedOn, 'the classifier');
      const { holdout, seed } = training;
      const indices = holdoutSplit(train, holdout, seed).heldOut;
      floorImages = {
        dataset: train,
        indices,
        key: `floor-holdout-${holdout}-seed-${seed}`,
        description: `${spec}: images the classifier held out of the train split (--holdout ${holdout} --seed ${seed}: ${indices.length})`,
      };
    }
    return {
      dataset,
      split: {
        data: spec,
        kind: 'test',
        key: 'test',
        indices: Array.from({ length: dataset.length }, (_, i) => i),
        description: `${spec}: the ${dataset.length} images of the test split (classifiers train on the train split)`,
        seenByClassifier: false,
      },
      floorImages,
    };
  }
  const dataset = loadDataFor(spec, c.shape, trainedOn, 'the classifier');
  if (heldOut) {
    const { holdout, seed } = training;
    const indices = holdoutSplit(dataset, holdout, seed).heldOut;
    return {
      dataset,
      split: {
        data: spec,
        kind: 'holdout',
        key: `holdout-${holdout}-seed-${seed}`,
        indices,
        description:
          `${spec}: the ${indices.length} images held out of the classifier's training ` +
          `(--holdout ${holdout} --seed ${seed}: ${(100 * holdout).toFixed(3).replace(/\.?0+$/, '')}% of each class)`,
        seenByClassifier: false,
      },
      floorImages: null,
    };
  }
  const seen = trainedOn === null ? null : trainedOn === spec;
  return {
    dataset,
    split: {
      data: spec,
      kind: 'all',
      key: 'all',
      indices: Array.from({ length: dataset.length }, (_, i) => i),
      description:
        `${spec}: all ${dataset.length} images` +
        (seen === true
          ? ' (the classifier trained on them; train it with --holdout F for a clean reference)'
          : seen === null
            ? " (the classifier's training data is unknown)"
            : ` (the classifier trained on ${trainedOn})`),
      seenByClassifier: seen,
    },
    floorImages: null,
  };
}

/** Images of each class in the reference set of `spec` (null when the data have no labels). */
export function referenceClassCounts(spec: string, c: EvalClassifier): number[] | null {
  const { dataset, split } = referenceSplit(spec, c);
  if (dataset.numClasses === undefined) return null;
  const counts = new Array<number>(dataset.numClasses).fill(0);
  for (const i of split.indices) counts[dataset.get(i).label!]!++;
  return counts;
}

/** Features, logits and predicted classes of n images. */
export interface Classified {
  n: number;
  /** n×F float32. */
  features: FeatureMatrix;
  /** n×K logits, row-major. */
  logits: Float32Array;
  /** argmax of each row of logits (the first on ties). */
  predicted: Int32Array;
}

function argmaxRows(logits: ArrayLike<number>, n: number, k: number): Int32Array {
  const out = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[r * k + j]! > logits[r * k + best]!) best = j;
    out[r] = best;
  }
  return out;
}

/** Classifies batches of images [B, C, H, W] in [−1, 1] at t = 0 and gathers the results. */
export class FeatureCollector {
  readonly #c: EvalClassifier;
  readonly #features: Float32Array[] = [];
  readonly #logits: Float32Array[] = [];
  #n = 0;

  constructor(c: EvalClassifier) {
    this.#c = c;
  }

  get count(): number {
    return this.#n;
  }

  /** Adds the features and logits of a batch (the tensor stays the caller's). */
  add(x: Tensor, what = 'the images'): void {
    const [b, ...shape] = x.shape;
    checkFits(this.#c, shape, what);
    const out = noGrad(() => tidy(() => this.#c.model.classify(x, 0)));
    try {
      this.#features.push(Float32Array.from(out.features.dataSync() as ArrayLike<number>));
      this.#logits.push(Float32Array.from(out.logits.dataSync() as ArrayLike<number>));
    } finally {
      out.features.dispose();
      out.logits.dispose();
    }
    this.#n += b!;
  }

  finish(): Classified {
    const f = this.#c.numFeatures;
    const k = this.#c.numClasses;
    const features = new Float32Array(this.#n * f);
    const logits = new Float32Array(this.#n * k);
    let at = 0;
    this.#features.forEach((a, i) => {
      features.set(a, at * f);
      logits.set(this.#logits[i]!, at * k);
      at += a.length / f;
    });
    return {
      n: this.#n,
      features: featureMatrix(features, this.#n, f),
      logits,
      predicted: argmaxRows(logits, this.#n, k),
    };
  }
}

/** Logits and predictions from features already computed: logits = W f + b (the last layer). */
export function classifyFeatures(c: EvalClassifier, features: FeatureMatrix): Classified {
  const k = c.numClasses;
  const n = features.rows;
  const logits = new Float32Array(n * k);
  const w = c.model.projOut.weight;
  const block = 1024;
  for (let r0 = 0; r0 < n; r0 += block) {
    const m = Math.min(block, n - r0);
    const rows = Float32Array.from(
      features.data.subarray(r0 * features.cols, (r0 + m) * features.cols),
    );
    const out = noGrad(() =>
      tidy(() =>
        c.model.projOut.forward(
          tensor(rows, [m, features.cols], { dtype: w.dtype, backend: w.backend }),
        ),
      ),
    );
    logits.set(Float32Array.from(out.dataSync() as ArrayLike<number>), r0 * k);
    out.dispose();
  }
  const data =
    features.data instanceof Float32Array ? features.data : Float32Array.from(features.data);
  return {
    n,
    features: featureMatrix(data, n, features.cols),
    logits,
    predicted: argmaxRows(logits, n, k),
  };
}

/** The real reference set in the classifier's feature space. */
export interface Reference {
  split: ReferenceSplit;
  /** The dataset's name and the shape its images were loaded at. */
  dataset: string;
  classes: Classified;
  stats: FeatureStats;
  /** The true class of each reference image (null for an unlabelled dataset). */
  labels: Int32Array | null;
  /** Real images for the floor besides the reference (null: the floor halves the reference). */
  floorImages: FloorImages | null;
  /** The stats cache file, whether it was read or written, and why an old one was rejected. */
  cache: { path: string | null; source: 'cache' | 'computed'; rejected: string | null };
}

export interface ReferenceOptions {
  /** The stats cache folder; null: compute and write nothing. */
  cacheDir: string | null;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
  onNote?: (line: string) => void;
}

/** The classifier's features of the images at `indices` of a dataset. */
export function datasetFeatures(
  c: EvalClassifier,
  ds: Dataset,
  indices: readonly number[],
  batchSize = 250,
  onProgress?: (done: number, total: number) => void,
): FeatureMatrix {
  const collector = new FeatureCollector(c);
  const loader = new DataLoader(subsetDataset(ds, indices), {
    batchSize: Math.max(1, Math.min(batchSize, indices.length)),
    shuffle: false,
    dropLast: false,
  });
  onProgress?.(0, indices.length);
  for (let b = 0; b < loader.stepsPerEpoch; b++) {
    const batch = loader.batchAt(b);
    try {
      collector.add(batch.x, `${ds.name} images`);
    } finally {
      batch.x.dispose();
      batch.labels?.dispose();
    }
    onProgress?.(collector.count, indices.length);
  }
  return collector.finish().features;
}

/**
 * The reference set of `spec` for a classifier: its features (from the cache when a valid file
 * is there, else computed and written), their Gaussian fit, the classifier's predictions and the
 * true labels.
 */
export async function loadReference(
  c: EvalClassifier,
  spec: string,
  opts: ReferenceOptions,
): Promise<Reference> {
  const { dataset: ds, split, floorImages } = referenceSplit(spec, c);
  const n = split.indices.length;
  if (n < c.numFeatures + 1) {
    throw new EvalInputError(
      `the reference set (${split.description}) has ${n} images for ${c.numFeatures} features: ` +
        `its covariance is singular and FD is undefined (it needs at least ${c.numFeatures + 1})`,
    );
  }
  const name = `${ds.name}@${formatShape(c.shape)}`;
  const compute = (): FeatureMatrix =>
    datasetFeatures(c, ds, split.indices, opts.batchSize, opts.onProgress);
  let features: FeatureMatrix;
  let stats: FeatureStats;
  let cache: Reference['cache'];
  if (opts.cacheDir === null) {
    features = compute();
    stats = featureStats(features);
    cache = { path: null, source: 'computed', rejected: null };
  } else {
    const key = { extractorHash: c.hash, dataset: name, split: split.key, n };
    const loaded = await loadOrComputeStats(opts.cacheDir, key, compute, {
      onInvalid: opts.onNote,
    });
    features = loaded.entry.features;
    stats = loaded.entry.stats;
    cache = { path: loaded.path, source: loaded.source, rejected: loaded.rejected };
  }
  const labels =
    ds.numClasses === undefined ? null : Int32Array.from(split.indices, (i) => ds.get(i).label!);
  return {
    split,
    dataset: name,
    classes: classifyFeatures(c, features),
    stats,
    labels,
    floorImages,
    cache,
  };
}

/** The rows of a feature matrix at `rows`, in that order. */
export function selectRows(f: FeatureMatrix, rows: ArrayLike<number>): FeatureMatrix {
  const d = f.cols;
  const out = new Float32Array(rows.length * d);
  for (let r = 0; r < rows.length; r++) {
    out.set(f.data.subarray(rows[r]! * d, (rows[r]! + 1) * d), r * d);
  }
  return featureMatrix(out, rows.length, d);
}

/**
 * Improved precision/recall (Kynkäänniemi et al. 2019): the k-th neighbour's radius; at most
 * maxRows rows of each set.
 */
export const PR_DEFAULTS = { k: 3, maxRows: 5000 } as const;

export interface PrecisionRecallScores {
  precision: number;
  recall: number;
  k: number;
  /** Rows of each set they were computed on. */
  rows: number;
}

/** m row indices spread evenly over n rows: ⌊i n / m⌋. */
export function spreadRows(n: number, m: number): Int32Array {
  return Int32Array.from({ length: m }, (_, i) => Math.floor((i * n) / m));
}

/**
 * Precision and recall of `gen` against `real` on equally many rows of each, m = min(n_real,
 * n_gen, maxRows), spread evenly over each set (the k-NN radii grow with fewer rows, so both
 * sets get the same number).
 */
export function spreadPrecisionRecall(
  real: FeatureMatrix,
  gen: FeatureMatrix,
  opts: { k?: number; maxRows?: number } = {},
): PrecisionRecallScores {
  const k = opts.k ?? PR_DEFAULTS.k;
  const m = Math.min(real.rows, gen.rows, opts.maxRows ?? PR_DEFAULTS.maxRows);
  const realRows = real.rows === m ? real : selectRows(real, spreadRows(real.rows, m));
  const genRows = gen.rows === m ? gen : selectRows(gen, spreadRows(gen.rows, m));
  const pr = precisionRecall(realRows, genRows, { k });
  return { precision: pr.precision, recall: pr.recall, k, rows: m };
}

/** The reference restricted to the images of class k (for the metrics of one class). */
export function referenceOfClass(ref: Reference, k: number, numFeatures: number): Reference {
  if (ref.labels === null) {
    throw new EvalInputError(`--class: the reference set (${ref.split.data}) has no class labels`);
  }
  const rows = [...ref.labels.keys()].filter((i) => ref.labels![i] === k);
  if (rows.length < numFeatures + 1) {
    throw new EvalInputError(
      `the reference set has ${rows.length} images of class ${k} for ${numFeatures} features: ` +
        `FD is undefined (it needs at least ${numFeatures + 1})`,
    );
  }
  const features = selectRows(ref.classes.features, rows);
  const k2 = ref.classes.logits.length / ref.classes.n;
  const logits = new Float32Array(rows.length * k2);
  rows.forEach((r, i) => logits.set(ref.classes.logits.subarray(r * k2, (r + 1) * k2), i * k2));
  return {
    ...ref,
    split: {
      ...ref.split,
      indices: rows.map((r) => ref.split.indices[r]!),
      description: `${ref.split.description}, class ${k} only (${rows.length} images)`,
    },
    classes: {
      n: rows.length,
      features,
      logits,
      predicted: Int32Array.from(rows, (r) => ref.classes.predicted[r]!),
    },
    stats: featureStats(features),
    labels: Int32Array.from(rows, () => k),
    floorImages:
      ref.floorImages === null
        ? null
        : {
            ...ref.floorImages,
            indices: ref.floorImages.indices.filter(
              (i) => ref.floorImages!.dataset.get(i).label === k,
            ),
            key: `${ref.floorImages.key}-class-${k}`,
            description: `${ref.floorImages.description}, class ${k} only`,
          },
  };
}

/** FD of real images against real images: the value a perfect model would get. */
export interface Floor {
  distance: number;
  /** The real images on each side: held-out images and the reference, or the two halves. */
  nA: number;
  nB: number;
  kind: 'held-out' | 'halves';
  description: string;
  /**
   * Precision and recall of the real images scored as samples are (held-out images against the
   * reference; half A against half B): what a model that draws real images gets.
   */
  precision: number;
  recall: number;
  k: number;
  prRows: number;
}

/** A Floor's precision/recall fields. */
function floorPr(pr: PrecisionRecallScores): Pick<Floor, 'precision' | 'recall' | 'k' | 'prRows'> {
  return { precision: pr.precision, recall: pr.recall, k: pr.k, prRows: pr.rows };
}

/**
 * The floor: the reference split into halves A and B (within each class, the images in dataset
 * order go alternately to A and B, so both halves have the same class mix), and FD(A, B). Null
 * when a half has no more rows than there are features (FD undefined).
 */
export function referenceFloor(ref: Reference): Floor | null {
  const n = ref.classes.n;
  const d = ref.classes.features.cols;
  const a: number[] = [];
  const b: number[] = [];
  const seen = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const y = ref.labels?.[i] ?? 0;
    const k = seen.get(y) ?? 0;
    seen.set(y, k + 1);
    (k % 2 === 0 ? a : b).push(i);
  }
  if (Math.min(a.length, b.length) < d + 1) return null;
  const fa = selectRows(ref.classes.features, a);
  const fb = selectRows(ref.classes.features, b);
  return {
    distance: frechetDistance(featureStats(fa), featureStats(fb)).distance,
    nA: a.length,
    nB: b.length,
    kind: 'halves',
    description: `two halves of the reference set (${a.length} and ${b.length} images, alternating within each class)`,
    ...floorPr(spreadPrecisionRecall(fb, fa)),
  };
}

/**
 * The floor for n samples: with held-out images besides the reference, FD of min(n, available)
 * of them (spread evenly over them) against the whole reference, i.e. real images scored exactly
 * as n samples are; else `referenceFloor` (the halves). The held-out features are cached like
 * the reference's. Its precision and recall are those images' against the reference, computed as
 * `scoreSamples` computes the samples'.
 */
export async function sampleFloor(
  c: EvalClassifier,
  ref: Reference,
  n: number,
  opts: ReferenceOptions,
): Promise<Floor | null> {
  const f = ref.floorImages;
  if (f === null) return referenceFloor(ref);
  const m = Math.min(n, f.indices.length);
  if (m < c.numFeatures + 1) return referenceFloor(ref);
  const picked = Array.from(
    { length: m },
    (_, i) => f.indices[Math.floor((i * f.indices.length) / m)]!,
  );
  const compute = (): FeatureMatrix =>
    datasetFeatures(c, f.dataset, picked, opts.batchSize, opts.onProgress);
  let stats: FeatureStats;
  let features: FeatureMatrix;
  if (opts.cacheDir === null) {
    features = compute();
    stats = featureStats(features);
  } else {
    const key = {
      extractorHash: c.hash,
      dataset: `${f.dataset.name}@${formatShape(c.shape)}`,
      split: f.key,
      n: m,
    };
    const { entry } = await loadOrComputeStats(opts.cacheDir, key, compute, {
      onInvalid: opts.onNote,
    });
    stats = entry.stats;
    features = entry.features;
  }
  return {
    distance: frechetDistance(stats, ref.stats).distance,
    nA: m,
    nB: ref.classes.n,
    kind: 'held-out',
    description: `${m} real images unseen by the classifier (${f.description}) against the reference set (${ref.classes.n})`,
    ...floorPr(spreadPrecisionRecall(ref.classes.features, features)),
  };
}
