/**
 * The latent cache of a latent diffusion run: the training images encoded once by the
 * autoencoder, so that a step costs a denoiser step and no encoder pass.
 *
 * Format (version 1): a safetensors file whose `__metadata__` holds `format`
 * ('sumi-latent-cache'), `version` ('1') and `header` (a JSON LatentCacheHeader: the vae's class,
 * config and weights sha256; the dataset's name, size, channels, length and the sha256 of its
 * pixels; whether mirrored images are included; the latent kind, dtype and shape; the sha256 of
 * the tensor data). Tensors: `mean` [N, c, h, w] F32 and, for an AutoencoderKL, `logvar` (the
 * posterior's, clamped as diffusers does); a VQModel's `mean` is its unquantized latent. With
 * flips, N is twice the dataset's length: entry length + i is image i mirrored.
 *
 * Step s of a run draws z = μ + σ·ε with ε from stream (seed, 'latent', s) (a VQModel's z is its
 * latent), so every epoch sees fresh posterior samples and a resumed run draws what an
 * uninterrupted one does. Reading and writing files: cache-fs.ts.
 */
import {
  type Backend,
  cpuBackend,
  defaultBackend,
  type FloatDType,
  randn,
  type Tensor,
  tensor,
} from '../../engine/index.js';
import {
  HeaderDiff,
  parseVersionedSafetensors,
  serializeVersionedSafetensors,
  versionedTensorF32,
} from '../../nn/safetensors.js';
import type { Batch, DataLoader, Dataset } from '../../data/index.js';
import { streamSeed } from '../trainer/streams.js';
import {
  encodeImages,
  LatentError,
  type LatentKind,
  type LatentSpec,
  type LatentVae,
} from './vae.js';

export const LATENT_CACHE_FORMAT = 'sumi-latent-cache';
export const LATENT_CACHE_VERSION = 1;

/** What a latent cache was made from and holds (see the module comment). */
export interface LatentCacheHeader {
  format: typeof LATENT_CACHE_FORMAT;
  version: typeof LATENT_CACHE_VERSION;
  vae: { className: string; config: Record<string, unknown>; sha256: string };
  dataset: {
    name: string;
    length: number;
    channels: number;
    height: number;
    width: number;
    /** sha256 of every image's float32 pixels, in order. */
    pixelsSha256: string;
  };
  /** Entries [length, 2·length) are the mirrored images. */
  flip: boolean;
  kind: LatentKind;
  dtype: 'float32';
  /** [entries, c, h, w]. */
  shape: [number, number, number, number];
  /** sha256 of the tensor data: `mean`'s bytes, then `logvar`'s. */
  dataSha256: string;
}

/** The header a cache made now would have, but for its data's hash. */
export type LatentCacheKey = Omit<LatentCacheHeader, 'dataSha256'>;

/** Encoded latents with what they were made from. */
export interface LatentCacheData {
  header: LatentCacheHeader;
  mean: Float32Array;
  logvar: Float32Array | null;
}

/** The cache file's bytes. */
export function serializeLatentCache(c: LatentCacheData): Uint8Array {
  const shape = c.header.shape;
  return serializeVersionedSafetensors(
    [
      { name: 'mean', shape, data: c.mean, dtype: 'F32' },
      ...(c.logvar !== null
        ? [{ name: 'logvar', shape, data: c.logvar, dtype: 'F32' as const }]
        : []),
    ],
    { format: LATENT_CACHE_FORMAT, version: LATENT_CACHE_VERSION, header: c.header },
  );
}

/**
 * A cache file's contents; anything but a complete version-1 cache is a LatentError naming
 * `source` (a truncated or corrupt file, another format). The data's hash is the caller's to check.
 */
export function parseLatentCache(bytes: Uint8Array, source: string): LatentCacheData {
  const corrupt = (why: string): never => {
    throw new LatentError(
      `${source}: not a usable latent cache (${why}); delete it to encode the images again`,
    );
  };
  const { file, header } = parseVersionedSafetensors<LatentCacheHeader>(bytes, source, {
    format: LATENT_CACHE_FORMAT,
    version: LATENT_CACHE_VERSION,
    corrupt,
  });
  const want = (name: string): Float32Array =>
    versionedTensorF32(file, name, header.shape, corrupt);
  return {
    header,
    mean: want('mean'),
    logvar: header.kind === 'kl' ? want('logvar') : null,
  };
}

/** What differs between a cache's header and the one wanted, each named with both values. */
export function staleReasons(have: LatentCacheHeader, want: LatentCacheKey): string[] {
  const d = new HeaderDiff();
  d.value('vae weights sha256', have.vae.sha256, want.vae.sha256);
  d.whole('the vae config differs', have.vae.config, want.vae.config);
  const hd = have.dataset;
  const wd = want.dataset;
  d.value('dataset', hd.name, wd.name);
  d.value('images', hd.length, wd.length);
  d.value('image shape', [hd.channels, hd.height, hd.width], [wd.channels, wd.height, wd.width]);
  d.whole('the images differ (pixels sha256)', hd.pixelsSha256, wd.pixelsSha256);
  d.value('flip', have.flip, want.flip);
  d.value('kind', have.kind, want.kind);
  d.value('shape', have.shape, want.shape);
  return d.reasons;
}

/** Planar image i of a dataset in [−1, 1], mirrored left-right when `mirror`. */
function imageValues(ds: Dataset, i: number, mirror: boolean, out: Float32Array, at: number): void {
  const img = ds.get(i).image;
  const w = ds.width;
  const rows = img.length / w;
  for (let r = 0; r < rows; r++) {
    const s = r * w;
    const d = at + r * w;
    if (mirror) for (let c = 0; c < w; c++) out[d + c] = img[s + w - 1 - c]! * 2 - 1;
    else for (let c = 0; c < w; c++) out[d + c] = img[s + c]! * 2 - 1;
  }
}

export interface EncodeProgress {
  /** Images encoded so far, and in all. */
  done: number;
  total: number;
}

/**
 * Encodes every image of `ds` (and, with `flip`, every image mirrored after them), `batchSize`
 * at a time on the autoencoder's backend, reporting each batch to `onProgress`.
 */
export async function encodeDataset(
  vae: LatentVae,
  spec: LatentSpec,
  ds: Dataset,
  opts: { flip: boolean; batchSize?: number; onProgress?: (p: EncodeProgress) => void },
): Promise<{ mean: Float32Array; logvar: Float32Array | null; shape: LatentCacheHeader['shape'] }> {
  const f = spec.downsampleFactor;
  const c = spec.latentChannels;
  const h = ds.height / f;
  const w = ds.width / f;
  const n = ds.length * (opts.flip ? 2 : 1);
  const shape: LatentCacheHeader['shape'] = [n, c, h, w];
  const per = c * h * w;
  const mean = new Float32Array(n * per);
  const logvar = spec.kind === 'kl' ? new Float32Array(n * per) : null;
  const size = ds.channels * ds.height * ds.width;
  const batch = opts.batchSize ?? 32;
  const p = vae.parameters()[0]!;
  const on = { backend: p.backend, dtype: p.dtype === 'float64' ? 'float64' : 'float32' } as const;
  for (let start = 0; start < n; start += batch) {
    const b = Math.min(batch, n - start);
    const x = new Float32Array(b * size);
    for (let k = 0; k < b; k++) {
      const e = start + k;
      imageValues(ds, e % ds.length, e >= ds.length, x, k * size);
    }
    const xt = tensor(
      on.dtype === 'float64' ? Float64Array.from(x) : x,
      [b, ds.channels, ds.height, ds.width],
      on,
    );
    try {
      const enc = encodeImages(vae, xt);
      try {
        mean.set(await enc.mean.data(), start * per);
        if (logvar !== null) logvar.set(await enc.logvar!.data(), start * per);
      } finally {
        enc.mean.dispose();
        enc.logvar?.dispose();
      }
    } finally {
      xt.dispose();
    }
    opts.onProgress?.({ done: start + b, total: n });
  }
  return { mean, logvar, shape };
}

/** The latents a run trains on, read from its cache. */
export class LatentCache {
  constructor(
    readonly data: LatentCacheData,
    /** u = scalingFactor · (z − shiftFactor). */
    readonly scaling: { scalingFactor: number; shiftFactor: number | null },
  ) {}

  /** [c, h, w] of one latent. */
  get latentShape(): [number, number, number] {
    const [, c, h, w] = this.data.header.shape;
    return [c, h, w];
  }

  /**
   * u [B, c, h, w] of dataset images `indices` (the mirrored image where `flipped`): z = μ + σ·ε
   * with ε from the Philox stream `noiseSeed` (a VQModel's z is its latent).
   */
  latents(
    indices: readonly number[],
    flipped: readonly boolean[],
    noiseSeed: number,
    opts: { backend?: Backend; dtype?: FloatDType } = {},
  ): Tensor {
    const { header, mean, logvar } = this.data;
    const [c, h, w] = this.latentShape;
    const per = c * h * w;
    const b = indices.length;
    const n = header.dataset.length;
    const u = new Float32Array(b * per);
    let eps: Float32Array | null = null;
    if (logvar !== null) {
      const e = randn([b, c, h, w], { seed: noiseSeed, dtype: 'float32', backend: cpuBackend() });
      eps = e.dataSync() as Float32Array;
      e.dispose();
    }
    const sf = this.scaling.scalingFactor;
    const shift = this.scaling.shiftFactor ?? 0;
    for (let k = 0; k < b; k++) {
      const i = indices[k]!;
      if (flipped[k] === true && !header.flip) {
        throw new LatentError('the latent cache holds no mirrored images (made without flips)');
      }
      const at = (flipped[k] === true ? n + i : i) * per;
      for (let j = 0; j < per; j++) {
        const z =
          eps === null
            ? mean[at + j]!
            : mean[at + j]! + Math.exp(0.5 * logvar![at + j]!) * eps[k * per + j]!;
        u[k * per + j] = sf * (z - shift);
      }
    }
    const dtype = opts.dtype ?? 'float32';
    return tensor(dtype === 'float64' ? Float64Array.from(u) : u, [b, c, h, w], {
      backend: opts.backend ?? defaultBackend(),
      dtype,
    });
  }

  /**
   * The batch of step s: the loader's images (its order, flips and labels) as latents, drawn with
   * ε from stream (seed, 'latent', s).
   */
  batchAt(loader: DataLoader, seed: number, s: number, dtype: FloatDType = 'float32'): Batch {
    const spe = loader.stepsPerEpoch;
    const epoch = Math.floor(s / spe);
    const { order, flips } = loader.epochOrder(epoch);
    const start = (s % spe) * loader.batchSize;
    const end = Math.min(order.length, start + loader.batchSize);
    const ds = loader.dataset;
    const indices: number[] = [];
    const flipped: boolean[] = [];
    const labels = ds.numClasses === undefined ? null : new Int32Array(end - start);
    for (let k = start; k < end; k++) {
      const idx = order[k]!;
      indices.push(idx);
      flipped.push(flips[k] === 1);
      if (labels !== null) {
        const label = ds.get(idx).label;
        if (label === undefined) throw new Error(`${ds.name}: sample ${idx} has no label`);
        labels[k - start] = label;
      }
    }
    const backend = defaultBackend();
    const x = this.latents(indices, flipped, streamSeed(seed, 'latent', s), { backend, dtype });
    const batch: Batch = { x, indices, flipped, step: s, epoch };
    if (labels !== null)
      batch.labels = tensor(labels, [labels.length], { backend, dtype: 'int32' });
    return batch;
  }
}
