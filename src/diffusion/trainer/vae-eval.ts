/**
 * Reconstructions of a trained autoencoder and their scores, shared by the trainer's held-out
 * measurement, `sumi reconstruct` and `sumi eval recon`: the KL kind decodes the posterior mean,
 * the VQ kind the quantized latents. PSNR and SSIM come from the caller (`measure`, the eval
 * layer's metrics), so this layer computes only the errors and the codebook statistics.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { clamp, noGrad, type Tensor, tidy } from '../../engine/index.js';
import {
  AutoencoderKL,
  CONFIG_NAME,
  loadModel,
  type LoadModelOptions,
  VQModel,
} from '../../nn/models/index.js';
import { type Dataset, DataLoader } from '../../data/index.js';
import { findCheckpoint } from './checkpoint.js';
import { VAE_DIR } from './vae-config.js';

export type Autoencoder = AutoencoderKL | VQModel;

/**
 * Full-reference quality of one reconstruction: planes (C, H, W) in [−1, 1] (range 2); `ssim`
 * null when the image is too small for its window.
 */
export type ImageQualityMeasure = (
  original: Float32Array,
  reconstruction: Float32Array,
  shape: readonly [number, number, number],
) => { psnr: number; ssim: number | null };

export interface Reconstruction {
  /** Decoded images [B, C, H, W], clamped to [−1, 1]. */
  images: Tensor;
  /** VQ: the codebook index of every latent position [B·h·w]; KL: null. */
  indices: Tensor | null;
}

/** decode(posterior mean) (KL) or decode(quantize(encode(x))) (VQ), without gradients. */
export function reconstruct(model: Autoencoder, x: Tensor): Reconstruction {
  return noGrad(() =>
    tidy(() => {
      if (model instanceof AutoencoderKL) {
        return { images: clamp(model.forward(x), -1, 1), indices: null };
      }
      const q = model.quantize.forward(model.encode(x));
      const out = model.decoder.forward(model.postQuantConv.forward(q.quantized));
      return { images: clamp(out, -1, 1), indices: q.indices };
    }),
  );
}

/** The share of codebook entries used and the perplexity exp(−Σ p log p) of their counts. */
export function codebookStats(counts: ArrayLike<number>): { usage: number; perplexity: number } {
  let total = 0;
  let used = 0;
  for (let k = 0; k < counts.length; k++) {
    total += counts[k]!;
    if (counts[k]! > 0) used++;
  }
  let entropy = 0;
  for (let k = 0; k < counts.length; k++) {
    const p = counts[k]! / total;
    if (p > 0) entropy -= p * Math.log(p);
  }
  return { usage: used / counts.length, perplexity: total > 0 ? Math.exp(entropy) : 0 };
}

export interface ReconstructionScores {
  count: number;
  /** Mean squared and mean absolute error per value, in the [−1, 1] range. */
  mse: number;
  l1: number;
  /** Mean over images (dB, range 2) and the standard error of that mean; null without measure. */
  psnr: number | null;
  psnrStderr: number | null;
  ssim: number | null;
  ssimStderr: number | null;
  /** VQ: share of the codebook used over these images, and the perplexity of its use. */
  codebookUsage: number | null;
  perplexity: number | null;
}

export interface EvaluateReconstructionOptions {
  batchSize?: number;
  /** Images measured at most (default: all). */
  limit?: number;
  measure?: ImageQualityMeasure;
  /** Each batch's originals and reconstructions, [B, C, H, W] in [−1, 1] (a preview grid). */
  onBatch?: (original: Float32Array, reconstruction: Float32Array, count: number) => void;
}

function meanAndStderr(v: readonly number[]): [number, number] {
  const n = v.length;
  const m = v.reduce((s, x) => s + x, 0) / n;
  if (n < 2) return [m, 0];
  const var_ = v.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1);
  return [m, Math.sqrt(var_ / n)];
}

/** Scores of the reconstructions of `dataset`'s images in order (see ReconstructionScores). */
export async function evaluateReconstruction(
  model: Autoencoder,
  dataset: Dataset,
  opts: EvaluateReconstructionOptions = {},
): Promise<ReconstructionScores> {
  const n = Math.min(dataset.length, opts.limit ?? dataset.length);
  if (n === 0) throw new Error(`${dataset.name}: no images to reconstruct`);
  const batchSize = Math.min(opts.batchSize ?? 32, n);
  const loader = new DataLoader(dataset, {
    batchSize,
    shuffle: false,
    dropLast: false,
    backend: model.parameters()[0]!.backend,
  });
  const { channels: c, height: h, width: w } = dataset;
  const size = c * h * w;
  const K = model instanceof VQModel ? model.config.num_vq_embeddings : 0;
  const counts = new Float64Array(K);
  const psnrs: number[] = [];
  const ssims: number[] = [];
  let se = 0;
  let ae = 0;
  let done = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let step = 0; done < n; step++) {
      const batch = loader.batchAt(step);
      const r = reconstruct(model, batch.x);
      const x = (await batch.x.data()) as Float32Array;
      const y = (await r.images.data()) as Float32Array;
      if (r.indices !== null) for (const k of await r.indices.data()) counts[k]!++;
      batch.x.dispose();
      r.images.dispose();
      r.indices?.dispose();
      const take = Math.min(batch.indices.length, n - done);
      for (let i = 0; i < take; i++) {
        const a = x.subarray(i * size, (i + 1) * size);
        const b = y.subarray(i * size, (i + 1) * size);
        for (let j = 0; j < size; j++) {
          const d = b[j]! - a[j]!;
          se += d * d;
          ae += Math.abs(d);
        }
        if (opts.measure) {
          const q = opts.measure(a, b, [c, h, w]);
          psnrs.push(q.psnr);
          if (q.ssim !== null) ssims.push(q.ssim);
        }
      }
      opts.onBatch?.(x.subarray(0, take * size), y.subarray(0, take * size), take);
      done += take;
    }
  } finally {
    model.train(wasTraining);
  }
  const [psnr, psnrStderr] = psnrs.length > 0 ? meanAndStderr(psnrs) : [null, null];
  const [ssim, ssimStderr] = ssims.length > 0 ? meanAndStderr(ssims) : [null, null];
  const stats = K > 0 ? codebookStats(counts) : null;
  return {
    count: n,
    mse: se / (n * size),
    l1: ae / (n * size),
    psnr,
    psnrStderr,
    ssim,
    ssimStderr,
    codebookUsage: stats?.usage ?? null,
    perplexity: stats?.perplexity ?? null,
  };
}

async function autoencoderConfigAt(dir: string): Promise<boolean> {
  try {
    if (!(await stat(join(dir, CONFIG_NAME))).isFile()) return false;
    const json = JSON.parse(await readFile(join(dir, CONFIG_NAME), 'utf8')) as {
      _class_name?: unknown;
    };
    return json._class_name === 'AutoencoderKL' || json._class_name === 'VQModel';
  } catch {
    return false;
  }
}

/**
 * The autoencoder folder `dir` names: `dir` itself (config.json of an AutoencoderKL or VQModel
 * and its weights), `dir/vae` (a pipeline or checkpoint folder), or the `vae/` of the latest
 * checkpoint of a `sumi train-vae` output folder.
 */
export async function resolveVaeDir(dir: string): Promise<string> {
  if (await autoencoderConfigAt(dir)) return dir;
  if (await autoencoderConfigAt(join(dir, VAE_DIR))) return join(dir, VAE_DIR);
  const ckpt = await findCheckpoint(dir);
  if (ckpt !== null && (await autoencoderConfigAt(join(ckpt, VAE_DIR)))) return join(ckpt, VAE_DIR);
  throw new Error(
    `${dir}: no autoencoder (an AutoencoderKL or VQModel config.json in ${dir}, ${join(dir, VAE_DIR)} ` +
      'or the checkpoint of a train-vae output folder)',
  );
}

/** Loads the autoencoder `dir` names (see resolveVaeDir), in eval mode. */
export async function loadAutoencoder(
  dir: string,
  opts: LoadModelOptions = {},
): Promise<{ model: Autoencoder; dir: string }> {
  const at = await resolveVaeDir(dir);
  const model = await loadModel(at, opts);
  if (!(model instanceof AutoencoderKL) && !(model instanceof VQModel)) {
    throw new Error(`${at}: expected an AutoencoderKL or VQModel, found ${model.className}`);
  }
  return { model, dir: at };
}
