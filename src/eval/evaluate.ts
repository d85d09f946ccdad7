/**
 * Evaluating a diffusion model: what each image is conditioned on, sampling in batches, and the
 * scores of the samples against the real reference set (reference.ts) in an evaluation
 * classifier's feature space:
 *
 * - FD = ‖μ_g − μ_r‖² + tr Σ_g + tr Σ_r − 2 tr((Σ_g^{1/2} Σ_r Σ_g^{1/2})^{1/2}) (frechet.ts);
 * - KID, the unbiased MMD² with k(x, y) = (xᵀy/d + 1)³, mean and spread over random subsets (kid.ts);
 * - improved precision and recall with k = 3 (precision-recall.ts) on equally many rows of each set;
 * - the entropy H = −Σ_c p_c log₂ p_c of the classifier's predicted classes (classes.ts);
 * - conditional accuracy p̂ = (samples classified as the class they were asked for) / n, with its
 *   binomial standard error √(p̂ (1 − p̂) / n), overall and per class;
 * - bits/dim of the variational bound on real images (nll.ts).
 *
 * Sampling: batch b of a run with seed S draws its noise from Philox seed S · 2^20 + b, so a run is
 * reproducible for a given batch size, and runs with different seeds never share a batch's noise.
 * Each model call is split between this thread and a replica of the model in a worker thread
 * (`SamplingReplicas`, as `generateBatches` does); the images are the same bit for bit.
 * Samples are quantized to 8 bits as a PNG stores them before they are classified
 * (`quantizeToByte`), so scoring a folder written by `SampleFolderWriter` gives the same numbers.
 */
import {
  classCaptionDataset,
  classPrompt,
  type ClassCaptionDataset,
  type Dataset,
  DataLoader,
  subsetDataset,
} from '../data/index.js';
import {
  checkClassifierFits,
  classifierGuidance,
  classifierScheduleMismatch,
  type ConditionSource,
  ConditionError,
  type ConditionValue,
  createSampler,
  type DenoiseModel,
  disposeConditioning,
  encodeConditions,
  generate,
  type LoadedClassifier,
  makeSchedule,
  type ModelInfo,
  type ModelVarType,
  type PredictionType,
  predictionTypeOf,
  type Scheduler,
  startSamplingReplicas,
  type VlbModel,
} from '../diffusion/index.js';
import type { SamplingReplicas } from '../diffusion/sampling-replicas.js';
import { noGrad, type Tensor, tensor } from '../engine/index.js';
import type { Conditioning, Denoiser } from '../nn/models/index.js';
import {
  classDistribution,
  conditionalAccuracy,
  datasetNll,
  featureStats,
  frechetDistance,
  kernelInceptionDistance,
  type NllResult,
} from './metrics/index.js';
import {
  type Classified,
  EvalInputError,
  PR_DEFAULTS,
  type Reference,
  spreadPrecisionRecall,
  spreadRows,
} from './reference.js';
import { quantizeToByte } from './sample-folder.js';

// ---- what each image is conditioned on ---------------------------------------------------------

export interface ConditionPlan {
  /** What image i is conditioned on (a class id, a prompt, null). */
  values: ConditionValue[];
  /** The class image i should show (conditional accuracy), or null when none was asked for. */
  requested: number[] | null;
  /** The class classifier guidance steers image i to, or null without classifier guidance. */
  guideLabels: number[] | null;
  /** Number of classes of the requests (null when there are none). */
  numClasses: number | null;
  /** One line for people. */
  description: string;
}

export interface ConditionOptions {
  n: number;
  /**
   * A class id or name for every image, 'all' (the classes in turn; the default) or 'reference'
   * (the classes in the proportions of `referenceCounts`, interleaved: `mixLabels`).
   */
  cls?: string;
  /** Images of each class in the reference set (for cls 'reference'; null: it has no labels). */
  referenceCounts?: readonly number[] | null;
  /** Text models: image i gets the prompt of its class, `classPrompt(dataset, class)`. */
  promptsFromClasses?: boolean;
  /** The dataset of the class prompts (mnist or fashion-mnist). */
  dataset?: string | null;
  /** Classifier guidance: its number of classes and their names. */
  guide?: { numClasses: number; classNames?: readonly string[] } | null;
  /** The evaluation classifier's number of classes (must equal the requests'). */
  evalClasses?: number | null;
}

/** Whether --class asks for one class for every image (not 'all' or 'reference'). */
export function isSingleClass(cls: string | undefined): cls is string {
  return cls !== undefined && cls !== 'all' && cls !== 'reference';
}

/**
 * n class ids in the proportions of `counts`, interleaved by smooth weighted round robin: each
 * class's credit grows by its count at every image, the class with the most credit (the lowest
 * id on a tie) is drawn and pays the total. Every prefix of m images then holds about m·p_c of
 * class c, and equal counts give the classes in turn (0, 1, ..., K−1, 0, ...).
 */
export function mixLabels(n: number, counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!(total > 0) || counts.some((c) => !(c >= 0))) {
    throw new EvalInputError(
      `class counts ${counts.join(', ')}: need non-negative counts, some > 0`,
    );
  }
  const credit = new Array<number>(counts.length).fill(0);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 0; c < counts.length; c++) {
      credit[c]! += counts[c]!;
      if (credit[c]! > credit[best]!) best = c;
    }
    credit[best]! -= total;
    out.push(best);
  }
  return out;
}

/**
 * Class ids of n images: all one class (by id or name), the K classes in turn ('all'), or the
 * classes in the reference set's proportions ('reference', from `referenceCounts`).
 */
export function classLabels(
  cls: string | undefined,
  n: number,
  k: number,
  names?: readonly string[],
  referenceCounts?: readonly number[] | null,
): number[] {
  if (cls === undefined || cls === 'all') return Array.from({ length: n }, (_, i) => i % k);
  if (cls === 'reference') {
    if (referenceCounts === undefined || referenceCounts === null) {
      throw new EvalInputError('--class reference: the reference set has no class labels');
    }
    if (referenceCounts.length !== k) {
      throw new EvalInputError(
        `--class reference: the reference set has ${referenceCounts.length} classes, the model ${k}`,
      );
    }
    return mixLabels(n, referenceCounts);
  }
  const id = /^\d+$/.test(cls) ? Number(cls) : (names?.indexOf(cls) ?? -1);
  if (!(id >= 0 && id < k)) {
    throw new EvalInputError(
      `--class ${cls}: not one of the classes 0..${k - 1}${names ? ` (${names.join(', ')})` : ''}, "all" or "reference"`,
    );
  }
  return new Array<number>(n).fill(id);
}

/** What the labels of `classLabels` are, for people. */
function labelsDescription(cls: string | undefined, labels: readonly number[], k: number): string {
  if (isSingleClass(cls)) return `class ${labels[0]}`;
  if (cls !== 'reference') return `classes 0..${k - 1} in turn`;
  const counts = new Array<number>(k).fill(0);
  for (const y of labels) counts[y]!++;
  return `classes 0..${k - 1} in the reference set's proportions (${counts.join(', ')} images)`;
}

function promptDataset(spec: string | null | undefined): ClassCaptionDataset {
  const kind = spec === null || spec === undefined ? null : classCaptionDataset(spec);
  if (kind !== null) return kind;
  throw new EvalInputError(
    `--prompts-from-classes: class prompts exist for mnist, mnist-full and fashion-mnist, not '${spec ?? '(unknown)'}'; give --data`,
  );
}

/** The conditions of n images for a model (see ConditionOptions); EvalInputError when impossible. */
export function planConditions(
  p: { condition: ConditionSource; info: ModelInfo | null },
  opts: ConditionOptions,
): ConditionPlan {
  const { n, cls } = opts;
  const kind = p.condition.kind;
  const guide = opts.guide ?? null;
  if (opts.promptsFromClasses === true && kind !== 'text') {
    throw new EvalInputError('--prompts-from-classes is for text-conditioned models');
  }
  let plan: ConditionPlan;
  if (kind === 'class') {
    const k = p.info?.numClasses ?? null;
    if (k === null)
      throw new EvalInputError(
        'the model is class-conditional but sumi.json gives no number of classes',
      );
    if (guide !== null && guide.numClasses !== k) {
      throw new EvalInputError(
        `--guide-classifier has ${guide.numClasses} classes, the model ${k}`,
      );
    }
    const labels = classLabels(cls, n, k, p.info?.classNames, opts.referenceCounts);
    plan = {
      values: labels,
      requested: labels,
      guideLabels: guide !== null ? labels : null,
      numClasses: k,
      description: labelsDescription(cls, labels, k),
    };
  } else if (kind === 'text') {
    if (opts.promptsFromClasses !== true) {
      throw new EvalInputError(
        'the model is text-conditioned: add --prompts-from-classes (image i gets the prompt of class i mod 10)',
      );
    }
    const ds = promptDataset(opts.dataset);
    if (guide !== null && guide.numClasses !== 10) {
      throw new EvalInputError(`--guide-classifier has ${guide.numClasses} classes, ${ds} 10`);
    }
    const labels = classLabels(cls, n, 10, undefined, opts.referenceCounts);
    plan = {
      values: labels.map((y) => classPrompt(ds, y)),
      requested: labels,
      guideLabels: guide !== null ? labels : null,
      numClasses: 10,
      description: `prompts of ${ds}'s classes (“${classPrompt(ds, labels[0]!)}”, ...)`,
    };
  } else if (guide !== null) {
    const labels = classLabels(cls, n, guide.numClasses, guide.classNames, opts.referenceCounts);
    plan = {
      values: labels.map(() => null),
      requested: labels,
      guideLabels: labels,
      numClasses: guide.numClasses,
      description: `classifier guidance to ${labelsDescription(cls, labels, guide.numClasses)}`,
    };
  } else {
    if (cls !== undefined) {
      throw new EvalInputError(
        `--class ${cls}: the model is unconditional (classifier guidance: add --guide-classifier DIR)`,
      );
    }
    plan = {
      values: new Array<ConditionValue>(n).fill(null),
      requested: null,
      guideLabels: null,
      numClasses: null,
      description: 'unconditional',
    };
  }
  const ek = opts.evalClasses ?? null;
  if (ek !== null && plan.numClasses !== null && ek !== plan.numClasses) {
    throw new EvalInputError(
      `the classifier has ${ek} classes, the model's requests ${plan.numClasses}: conditional accuracy needs the same classes`,
    );
  }
  return plan;
}

// ---- sampling ---------------------------------------------------------------------------------

export interface GuideSpec {
  loaded: LoadedClassifier;
  /** The guidance scale s. */
  scale: number;
}

export interface SampleRequest {
  model: Denoiser;
  condition: ConditionSource;
  scheduler: Scheduler;
  predictionType: PredictionType;
  /** What image i is conditioned on; its length is the number of images. */
  values: readonly ConditionValue[];
  /** Classifier guidance towards `guideLabels`. */
  guide?: GuideSpec | null;
  guideLabels?: readonly number[] | null;
  /** Classifier-free guidance scale w (1: none). */
  guidanceScale?: number;
  guidanceRescale?: number;
  eta?: number;
  numInferenceSteps: number;
  seed: number;
  batchSize: number;
  /**
   * Threads computing each model call: 1, or 2 (half of each batch on a replica of the model in
   * a worker thread; the images are the same bit for bit). Default as `generateBatches`: 2 on the
   * CPU backend for batches of at least 8 images.
   */
  replicas?: number;
}

export interface SampledBatch {
  /** Index of the first image. */
  start: number;
  /** Images [count, C, H, W] in [−1, 1], quantized to 8 bits (quantizeToByte). */
  values: Float32Array;
  shape: [number, number, number, number];
  /** The same values as a float32 tensor on the model's backend (freed after the callback). */
  x: Tensor;
}

export interface SampleRunInfo {
  images: number;
  /** Denoiser evaluations per image (one per sampler model call; both CFG branches count once). */
  modelCallsPerImage: number;
  seconds: number;
}

/** Philox seed of batch b of a run with seed S: S · 2^20 + b. */
export function batchSeed(seed: number, b: number): number {
  const s = seed * 2 ** 20 + b;
  if (!Number.isSafeInteger(seed) || seed < 0 || b >= 2 ** 20 || !Number.isSafeInteger(s)) {
    throw new EvalInputError(`seed ${seed} (batch ${b}) is outside [0, 2^33) or too many batches`);
  }
  return s;
}

/**
 * Checks everything a sampling run can refuse before it starts: the conditions (each distinct
 * value is encoded once), guidance needing a null condition, the guiding classifier's image shape
 * and noise schedule, the seed. Throws EvalInputError.
 */
export function checkSampleRequest(req: SampleRequest): void {
  const backend = req.model.parameters()[0]!.backend;
  if (!Number.isInteger(req.batchSize) || req.batchSize < 1) {
    throw new EvalInputError(`batch size must be a positive integer, got ${req.batchSize}`);
  }
  batchSeed(req.seed, Math.max(0, Math.ceil(req.values.length / req.batchSize) - 1));
  const distinct = [...new Set(req.values)];
  try {
    const c = encodeConditions(
      req.condition,
      { values: distinct, guidanceScale: req.guidanceScale ?? 1 },
      backend,
    );
    disposeConditioning(c.cond);
    if (c.uncond !== null) disposeConditioning(c.uncond);
  } catch (e) {
    if (e instanceof ConditionError) throw new EvalInputError(e.message);
    throw e;
  }
  const guide = req.guide ?? null;
  if (guide !== null) {
    if (
      req.guideLabels === null ||
      req.guideLabels === undefined ||
      req.guideLabels.length !== req.values.length
    ) {
      throw new EvalInputError('classifier guidance needs one class per image');
    }
    try {
      checkClassifierFits(guide.loaded.classifier, req.model.sampleShape);
    } catch (e) {
      throw new EvalInputError(`--guide-classifier: ${(e as Error).message}`);
    }
    const mismatch = classifierScheduleMismatch(guide.loaded, req.scheduler.alphasCumprod);
    if (mismatch !== null) throw new EvalInputError(`--guide-classifier: ${mismatch}`);
  }
}

/**
 * Samples `values.length` images in batches (see the module comment for the noise) and hands each
 * batch, quantized, to `onBatch`.
 */
export async function sampleBatches(
  req: SampleRequest,
  onBatch: (batch: SampledBatch) => void | Promise<void>,
  onProgress?: (done: number, total: number) => void,
): Promise<SampleRunInfo> {
  checkSampleRequest(req);
  const n = req.values.length;
  const t0 = performance.now();
  const replicas = await startSamplingReplicas(req.model, req.replicas, Math.min(req.batchSize, n));
  try {
    const calls = await sampleEachBatch(req, replicas, onBatch, onProgress);
    return { images: n, modelCallsPerImage: calls, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await replicas?.close();
  }
}

/** sampleBatches' loop; returns the model calls per image of the first batch. */
async function sampleEachBatch(
  req: SampleRequest,
  replicas: SamplingReplicas | null,
  onBatch: (batch: SampledBatch) => void | Promise<void>,
  onProgress?: (done: number, total: number) => void,
): Promise<number> {
  const n = req.values.length;
  const backend = req.model.parameters()[0]!.backend;
  const guide = req.guide ?? null;
  let calls = 0;
  let callsFirst = 0;
  onProgress?.(0, n);
  for (let b = 0, start = 0; start < n; b++, start += req.batchSize) {
    const count = Math.min(req.batchSize, n - start);
    const values = req.values.slice(start, start + count);
    const labels = req.guideLabels?.slice(start, start + count) ?? null;
    const conds = encodeConditions(
      req.condition,
      { values, guidanceScale: req.guidanceScale ?? 1 },
      backend,
    );
    let images: Tensor;
    try {
      images = generate(req.model, req.scheduler, {
        n: count,
        seed: batchSeed(req.seed, b),
        numInferenceSteps: req.numInferenceSteps,
        eta: req.eta,
        cond: conds.cond,
        uncond: conds.uncond,
        guidanceScale: req.guidanceScale ?? 1,
        guidanceRescale: req.guidanceRescale ?? 0,
        replicas,
        wrap: (denoise: DenoiseModel): DenoiseModel => {
          const inner =
            guide === null || labels === null
              ? denoise
              : classifierGuidance(denoise, {
                  classifier: guide.loaded.classifier,
                  labels,
                  scale: guide.scale,
                  alphasCumprod: req.scheduler.alphasCumprod,
                  predictionType: req.predictionType,
                });
          return (x, t) => {
            calls++;
            return inner(x, t);
          };
        },
      });
    } finally {
      disposeConditioning(conds.cond);
      if (conds.uncond !== null) disposeConditioning(conds.uncond);
    }
    if (b === 0) callsFirst = calls;
    const shape = images.shape as [number, number, number, number];
    const q = quantizeToByte(Float32Array.from((await images.data()) as ArrayLike<number>));
    images.dispose();
    const x = tensor(q, shape, { backend, dtype: 'float32' });
    try {
      await onBatch({ start, values: q, shape, x });
    } finally {
      x.dispose();
    }
    onProgress?.(start + count, n);
  }
  return callsFirst;
}

// ---- scores -----------------------------------------------------------------------------------

export interface ScoreOptions {
  /** KID: number of subsets (default 100) and rows per subset of each set (default 500). */
  kidSubsets?: number;
  kidSubsetSize?: number;
  /** Precision/recall: at most this many rows of each set (default 5000). */
  prMaxRows?: number;
  /** Precision/recall neighbour (default 3). */
  k?: number;
  /** Seed of the KID subsets (default 0). */
  seed?: number;
}

export const SCORE_DEFAULTS = {
  kidSubsets: 100,
  kidSubsetSize: 500,
  prMaxRows: PR_DEFAULTS.maxRows,
  k: PR_DEFAULTS.k,
} as const;

export interface AccuracyReport {
  accuracy: number;
  standardError: number;
  correct: number;
  n: number;
  /** Accuracy among the images asked to be class c (null where none was). */
  perClass: (number | null)[];
  perClassCount: number[];
}

export interface FdScores {
  samples: number;
  referenceImages: number;
  featureDim: number;
  fd: number;
  fdMeanTerm: number;
  fdTraceTerm: number;
  kid: { value: number; std: number; subsets: number; subsetSize: number };
  precision: number;
  recall: number;
  k: number;
  /** Rows of each set precision and recall were computed on. */
  prRows: number;
  classes: {
    /** H of the predicted classes of the samples, and of the reference, in bits. */
    entropyBits: number;
    referenceEntropyBits: number;
    /** log₂ K: the entropy of a uniform histogram. */
    maxBits: number;
    counts: number[];
  };
  conditional: AccuracyReport | null;
}

/** Throws an EvalInputError when n samples cannot give a full-rank covariance of dim features. */
export function checkEnoughSamples(n: number, dim: number, what = 'samples'): void {
  if (n < dim + 1) {
    throw new EvalInputError(
      `${n} ${what} for ${dim} features: the covariance is singular and FD is undefined ` +
        `(give at least ${dim + 1})`,
    );
  }
}

/** Conditional accuracy of predictions against requests, with plain arrays for JSON. */
export function accuracyReport(
  predicted: ArrayLike<number>,
  requested: ArrayLike<number>,
  numClasses: number,
): AccuracyReport {
  const a = conditionalAccuracy(predicted, requested, numClasses);
  return {
    accuracy: a.accuracy,
    standardError: a.standardError,
    correct: a.correct,
    n: a.n,
    perClass: Array.from(a.perClass, (v) => (Number.isNaN(v) ? null : v)),
    perClassCount: Array.from(a.perClassCount),
  };
}

/** Every score of the samples against the reference (see the module comment). */
export function scoreSamples(
  gen: Classified,
  ref: Reference,
  requested: readonly number[] | null,
  numClasses: number,
  opts: ScoreOptions = {},
): FdScores {
  const d = gen.features.cols;
  checkEnoughSamples(gen.n, d);
  checkEnoughSamples(ref.classes.n, d, 'reference images');
  const fd = frechetDistance(featureStats(gen.features), ref.stats);
  const subsets = opts.kidSubsets ?? SCORE_DEFAULTS.kidSubsets;
  const subsetSize = Math.min(
    opts.kidSubsetSize ?? SCORE_DEFAULTS.kidSubsetSize,
    gen.n,
    ref.classes.n,
  );
  const kid = kernelInceptionDistance(gen.features, ref.classes.features, {
    subsets,
    subsetSize,
    seed: opts.seed ?? 0,
  });
  const pr = spreadPrecisionRecall(ref.classes.features, gen.features, {
    k: opts.k ?? SCORE_DEFAULTS.k,
    maxRows: opts.prMaxRows ?? SCORE_DEFAULTS.prMaxRows,
  });
  const hist = classDistribution(gen.predicted, numClasses);
  const refHist = classDistribution(ref.classes.predicted, numClasses);
  return {
    samples: gen.n,
    referenceImages: ref.classes.n,
    featureDim: d,
    fd: fd.distance,
    fdMeanTerm: fd.meanTerm,
    fdTraceTerm: fd.traceTerm,
    kid: { value: kid.kid, std: kid.std, subsets, subsetSize },
    precision: pr.precision,
    recall: pr.recall,
    k: pr.k,
    prRows: pr.rows,
    classes: {
      entropyBits: hist.entropyBits,
      referenceEntropyBits: refHist.entropyBits,
      maxBits: Math.log2(numClasses),
      counts: Array.from(hist.counts),
    },
    conditional: requested === null ? null : accuracyReport(gen.predicted, requested, numClasses),
  };
}

// ---- bits per dimension -----------------------------------------------------------------------

export interface NllRequest {
  model: Denoiser;
  condition: ConditionSource;
  /** The model's scheduler_config.json (its β schedule, prediction type, variance type). */
  schedulerConfig: Readonly<Record<string, unknown>>;
  dataset: Dataset;
  indices: readonly number[];
  /** What image i of `indices` is conditioned on. */
  values: readonly ConditionValue[];
  batchSize: number;
  /** 1: every timestep (the bound); s > 1: the stratified estimate (nll.ts). */
  stride: number;
  seed: number;
  onProgress?: (done: number, total: number) => void;
}

export interface NllReport extends NllResult {
  varianceType: ModelVarType;
  clipDenoised: boolean;
  predictionType: PredictionType;
}

/** p_θ's variance as the scheduler config's `variance_type` gives it. */
export function varianceTypeOf(cfg: Readonly<Record<string, unknown>>): ModelVarType {
  const v = cfg.variance_type ?? 'fixed_small';
  if (v === 'fixed_small' || v === 'fixed_small_log') return 'fixed_small';
  if (v === 'fixed_large' || v === 'fixed_large_log') return 'fixed_large';
  if (v === 'learned' || v === 'learned_range') return v;
  throw new EvalInputError(`variance_type ${JSON.stringify(v)} is not supported by the bound`);
}

/**
 * Bits/dim of the variational bound of the images at `indices` under the model (datasetNll), on
 * the model's training schedule, with x̂_0 clipped to [−1, 1] when the scheduler clips samples
 * (`clip_sample`, default true). Each batch is conditioned on its `values`.
 */
export async function modelNll(req: NllRequest): Promise<NllReport> {
  const n = req.indices.length;
  if (n < 1) throw new EvalInputError('nll: no images');
  if (req.values.length !== n)
    throw new Error(`nll: ${req.values.length} conditions for ${n} images`);
  const cfg = req.schedulerConfig;
  const schedule = makeSchedule(Float64Array.from(createSampler('ddpm', cfg).betas));
  const varianceType = varianceTypeOf(cfg);
  const clipDenoised = cfg.clip_sample !== false;
  const predictionType = predictionTypeOf(cfg);
  const backend = req.model.parameters()[0]!.backend;
  const loader = new DataLoader(subsetDataset(req.dataset, req.indices), {
    batchSize: Math.min(req.batchSize, n),
    shuffle: false,
    dropLast: false,
    backend,
  });
  try {
    const c = req.condition.encode([...new Set(req.values)], backend);
    disposeConditioning(c);
  } catch (e) {
    if (e instanceof ConditionError) throw new EvalInputError(e.message);
    throw e;
  }
  let cond: Conditioning = {};
  const model: VlbModel = (xt, ts) => req.model.denoise(xt, ts, cond);
  const values = req.values;
  function* batches(): Generator<Tensor> {
    for (let b = 0; b < loader.stepsPerEpoch; b++) {
      const batch = loader.batchAt(b);
      batch.labels?.dispose();
      const start = b * loader.batchSize;
      cond = noGrad(() =>
        req.condition.encode(values.slice(start, start + batch.indices.length), backend),
      );
      try {
        yield batch.x;
      } finally {
        batch.x.dispose();
        disposeConditioning(cond);
        cond = {};
      }
    }
  }
  req.onProgress?.(0, n);
  const result = await datasetNll(schedule, model, batches(), {
    seed: req.seed,
    timestepStride: req.stride,
    predictionType,
    varianceType,
    clipDenoised,
    onProgress: (done) => req.onProgress?.(done, n),
  });
  return { ...result, varianceType, clipDenoised, predictionType };
}

/** Indices of m images spread evenly over a dataset of n: ⌊i n / m⌋ (every class for sorted MNIST). */
export function spreadIndices(n: number, m: number): number[] {
  return Array.from(spreadRows(n, Math.min(n, m)));
}
