/**
 * Negative log-likelihood bound of a dataset in bits per dimension: the variational bound of DDPM
 * (Ho et al. 2020, eq. 5; improved DDPM's `calc_bpd_loop`, Nichol & Dhariwal 2021)
 *
 *   L(x_0) = L_T + Σ_{t=1}^{T−1} L_{t−1} + L_0          (schedule indices t = 0…T−1)
 *   L_T     = KL(q(x_T | x_0) ‖ N(0, I))                                   priorBpd
 *   L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)),  x_t ~ q(x_t | x_0)   vbTermBpd, t ≥ 1
 *   L_0     = −log p_θ(x_0 | x_1), the discretized Gaussian decoder       vbTermBpd, t = 0
 *
 * per image, averaged over the dataset with its standard error s/√n. Every term comes from
 * src/diffusion/vlb.ts; this file adds the dataset loop, the noise layout and the estimator.
 *
 * Noise: image i (counted from 0 over the whole dataset) at timestep t uses the Philox stream
 * (seed, offset (i (T+1) + t) · ⌈D/4⌉) for its D numbers, so a result does not depend on the
 * batching. The first uniform number at t = T of the same layout is the image's stratification
 * offset u_i.
 *
 * Estimators:
 * - exact (stride 1): every t, T model calls per image: the bound itself (for one noise draw).
 * - stratified (stride s > 1): L_T and L_0 exactly; the KL terms t = 1…T−1 split into strata
 *   [1 + js, 1 + (j+1)s) ∩ [1, T−1] of size n_j, one timestep per stratum
 *   t_ij = start_j + ⌊u_i n_j⌋, weighted by n_j (its importance weight 1/P(t_ij) within the
 *   stratum): Σ_t L_{t−1} ≈ Σ_j n_j L_{t_ij − 1}. Unbiased for each image; since every image
 *   draws its own u_i, the standard error includes the timestep-sampling variance. A fast
 *   estimate, not the bound: 1 + ⌈(T−1)/s⌉ model calls per image.
 */
import { concat, cpuBackend, noGrad, rand, randn, type Tensor, tidy } from '../../engine/index.js';
import {
  addNoise,
  modelDistribution,
  type NoiseSchedule,
  priorBpd,
  vbTermBpd,
  type VbTermOptions,
  type VlbModel,
} from '../../diffusion/index.js';

export interface NllOptions extends VbTermOptions {
  /** Philox seed of the noise (default 0). */
  seed?: number;
  /** 1 (default): every timestep, the exact bound. s > 1: the stratified estimate (see above). */
  timestepStride?: number;
  /** Called after each batch with the number of images done so far. */
  onProgress?: (imagesDone: number) => void;
}

export interface NllResult {
  /** Mean over images of the per-image bound (or its estimate), bits per dimension. */
  bitsPerDim: number;
  /** Standard error of that mean: sample standard deviation over images / √n (NaN for n = 1). */
  standardError: number;
  n: number;
  /** The bound (or estimate) of each image, in dataset order. */
  perImage: Float64Array;
  /** Means over images of L_T, of Σ_{t≥1} L_{t−1} and of L_0; they add up to bitsPerDim. */
  prior: number;
  kl: number;
  decoder: number;
  estimator: 'exact' | 'stratified';
  stride: number;
  /** Model evaluations per image. */
  modelCallsPerImage: number;
  /** Exact estimator only: termMeans[t] = mean over images of the term at index t (0: L_0). */
  termMeans: Float64Array | null;
}

/** Philox blocks per draw of D numbers (4 numbers per block). */
function blocksPer(d: number): number {
  return Math.ceil(d / 4);
}

/**
 * Philox block offset of image i's draw at timestep t (t = T: its stratification offset):
 * (i (T+1) + t) ⌈D/4⌉.
 */
export function nllNoiseOffset(image: number, t: number, T: number, d: number): number {
  const offset = (image * (T + 1) + t) * blocksPer(d);
  if (!Number.isSafeInteger(offset + blocksPer(d))) {
    throw new Error(`nll: noise offset for image ${image} runs past 2^53`);
  }
  return offset;
}

/** Noise of image i at timestep t as a [1, ...image shape] tensor. */
function imageNoise(x0: Tensor, seed: number, image: number, t: number, T: number): Tensor {
  const d = x0.size / x0.shape[0]!;
  return randn([1, ...x0.shape.slice(1)], {
    seed,
    offset: nllNoiseOffset(image, t, T, d),
    dtype: x0.dtype,
    backend: x0.backend,
  });
}

/** One evaluation slot of a batch: the timestep of each image and the weight of its term. */
interface Slot {
  timesteps: number[];
  weight: number;
  /** Exact estimator: the timestep all images share (for termMeans); −1 otherwise. */
  shared: number;
}

function stratifiedSlots(T: number, stride: number, offsets: Float64Array): Slot[] {
  const slots: Slot[] = [];
  for (let start = 1; start < T; start += stride) {
    const size = Math.min(stride, T - start);
    slots.push({
      timesteps: Array.from(offsets, (u) => start + Math.min(Math.floor(u * size), size - 1)),
      weight: size,
      shared: -1,
    });
  }
  return slots;
}

/**
 * The variational bound of a dataset under a denoiser, in bits per dimension (see the file
 * header). `data` yields batches x_0 [B, C, ...] of images in [−1, 1] (not disposed here);
 * `model(x_t, t)` returns the model output (C channels, or 2C with a learned variance, per
 * `varianceType`). Runs without gradients and frees each step's tensors.
 */
export async function datasetNll(
  s: NoiseSchedule,
  model: VlbModel,
  data: Iterable<Tensor> | AsyncIterable<Tensor>,
  opts: NllOptions = {},
): Promise<NllResult> {
  const T = s.numTrainTimesteps;
  const seed = opts.seed ?? 0;
  const stride = opts.timestepStride ?? 1;
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`nll: timestepStride must be a positive integer, got ${stride}`);
  }
  const exact = stride === 1;
  const perImage: number[] = [];
  let priorSum = 0;
  let klSum = 0;
  let decoderSum = 0;
  const termSums = exact ? new Float64Array(T) : null;
  let imageShape: string | null = null;

  for await (const x0 of data) {
    const B = x0.shape[0]!;
    if (x0.rank < 2 || B < 1)
      throw new Error(`nll: expected a batch [B, C, ...], got [${x0.shape.join(', ')}]`);
    const shape = x0.shape.slice(1).join(',');
    if (imageShape !== null && shape !== imageShape) {
      throw new Error(`nll: image shape changed from [${imageShape}] to [${shape}]`);
    }
    imageShape = shape;
    const D = x0.size / B;
    const first = perImage.length;

    let slots: Slot[];
    if (exact) {
      slots = [];
      for (let t = T - 1; t >= 1; t--)
        slots.push({ timesteps: new Array<number>(B).fill(t), weight: 1, shared: t });
    } else {
      const offsets = new Float64Array(B);
      for (let b = 0; b < B; b++) {
        // u_i: a uniform number from image i's stream position at t = T.
        const offset = nllNoiseOffset(first + b, T, T, D);
        const u = rand([1], { seed, offset, dtype: 'float64', backend: cpuBackend() });
        offsets[b] = u.dataSync()[0]!;
        u.dispose();
      }
      slots = stratifiedSlots(T, stride, offsets);
    }
    slots.push({ timesteps: new Array<number>(B).fill(0), weight: 1, shared: 0 });

    const totals = new Float64Array(B);
    const priorT = tidy(() => noGrad(() => priorBpd(s, x0)));
    const prior = await priorT.data();
    priorT.dispose();
    for (let b = 0; b < B; b++) {
      totals[b] = prior[b]!;
      priorSum += prior[b]!;
    }
    for (const slot of slots) {
      const ts = slot.timesteps;
      const vbT = tidy(() =>
        noGrad(() => {
          const noise = concat(
            ts.map((t, b) => imageNoise(x0, seed, first + b, t, T)),
            0,
          );
          const xt = addNoise(s, x0, noise, ts);
          const dist = modelDistribution(s, model(xt, ts), xt, ts, opts);
          return vbTermBpd(s, x0, xt, ts, dist, opts);
        }),
      );
      const vb = await vbT.data();
      vbT.dispose();
      for (let b = 0; b < B; b++) {
        const v = slot.weight * vb[b]!;
        totals[b] = totals[b]! + v;
        if (ts[b] === 0) decoderSum += v;
        else klSum += v;
        if (termSums !== null) termSums[slot.shared] = termSums[slot.shared]! + v;
      }
    }
    for (const v of totals) perImage.push(v);
    opts.onProgress?.(perImage.length);
  }

  const n = perImage.length;
  if (n === 0) throw new Error('nll: the dataset is empty');
  let mean = 0;
  for (const v of perImage) mean += v;
  mean /= n;
  let ss = 0;
  for (const v of perImage) ss += (v - mean) ** 2;
  return {
    bitsPerDim: mean,
    standardError: n > 1 ? Math.sqrt(ss / (n - 1) / n) : NaN,
    n,
    perImage: Float64Array.from(perImage),
    prior: priorSum / n,
    kl: klSum / n,
    decoder: decoderSum / n,
    estimator: exact ? 'exact' : 'stratified',
    stride,
    modelCallsPerImage: exact ? T : 1 + Math.ceil((T - 1) / stride),
    termMeans: termSums === null ? null : termSums.map((v) => v / n),
  };
}
