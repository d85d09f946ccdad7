/**
 * The latent cache on disk (format: cache.ts). `openLatentCache` reads a cache that fits the run,
 * or encodes the images and writes one (a temporary file, then a rename: a reader never sees half
 * a cache). A cache of other data or another vae is encoded again at a run's own path, and refused
 * at a path the user named (it may belong to another run). A corrupt or truncated cache is one
 * error; nothing is overwritten.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mkdir } from 'node:fs/promises';

import type { Dataset } from '../../data/index.js';
import { writeFileAtomic } from '../../nn/models/index.js';
import {
  encodeDataset,
  type EncodeProgress,
  LATENT_CACHE_FORMAT,
  LATENT_CACHE_VERSION,
  LatentCache,
  type LatentCacheData,
  type LatentCacheKey,
  parseLatentCache,
  serializeLatentCache,
  staleReasons,
} from './cache.js';
import { LatentError } from './vae.js';
import type { LoadedVae } from './vae-fs.js';
import { isFile } from '../files.js';

/** The cache's file name inside a run's output folder. */
export const LATENT_CACHE_FILE = 'latents.safetensors';

/** sha256 of every image's float32 pixels, in order. */
export function datasetPixelsSha256(ds: Dataset): string {
  const h = createHash('sha256');
  for (let i = 0; i < ds.length; i++) {
    const img = ds.get(i).image;
    h.update(new Uint8Array(img.buffer, img.byteOffset, img.byteLength));
  }
  return h.digest('hex');
}

function dataSha256(mean: Float32Array, logvar: Float32Array | null): string {
  const h = createHash('sha256');
  for (const a of logvar === null ? [mean] : [mean, logvar]) {
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest('hex');
}

/** The header a cache of `ds` encoded by `v` would have (but for its data's hash). */
export function latentCacheKey(v: LoadedVae, ds: Dataset, flip: boolean): LatentCacheKey {
  const f = v.spec.downsampleFactor;
  return {
    format: LATENT_CACHE_FORMAT,
    version: LATENT_CACHE_VERSION,
    vae: { className: v.spec.vaeClass, config: v.config, sha256: v.sha256 },
    dataset: {
      name: ds.name,
      length: ds.length,
      channels: ds.channels,
      height: ds.height,
      width: ds.width,
      pixelsSha256: datasetPixelsSha256(ds),
    },
    flip,
    kind: v.spec.kind,
    dtype: 'float32',
    shape: [ds.length * (flip ? 2 : 1), v.spec.latentChannels, ds.height / f, ds.width / f],
  };
}

/** Reads and checks a cache file (LatentError when it is corrupt or truncated). */
export async function readLatentCache(path: string): Promise<LatentCacheData> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new LatentError(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  const data = parseLatentCache(bytes, path);
  if (dataSha256(data.mean, data.logvar) !== data.header.dataSha256) {
    throw new LatentError(
      `${path}: not a usable latent cache (its data does not match the sha256 its header records); ` +
        'delete it to encode the images again',
    );
  }
  return data;
}

/** Writes a cache file atomically. */
export async function writeLatentCache(
  path: string,
  key: LatentCacheKey,
  latents: { mean: Float32Array; logvar: Float32Array | null },
): Promise<LatentCacheData> {
  const data: LatentCacheData = {
    header: { ...key, dataSha256: dataSha256(latents.mean, latents.logvar) },
    mean: latents.mean,
    logvar: latents.logvar,
  };
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, serializeLatentCache(data));
  return data;
}

export interface OpenLatentCacheOptions {
  path: string;
  /** The user named the path (--latent-cache): a cache of something else there is refused. */
  explicit: boolean;
  vae: LoadedVae;
  dataset: Dataset;
  flip: boolean;
  batchSize?: number;
  onMessage?: (line: string) => void;
  onProgress?: (p: EncodeProgress) => void;
}

/** The run's latents: the cache at `path` when it fits, else freshly encoded (see the module comment). */
export async function openLatentCache(opts: OpenLatentCacheOptions): Promise<LatentCache> {
  const { path, vae, dataset } = opts;
  const key = latentCacheKey(vae, dataset, opts.flip);
  const scaling = { scalingFactor: vae.spec.scalingFactor, shiftFactor: vae.spec.shiftFactor };
  if (await isFile(path)) {
    const data = await readLatentCache(path);
    const stale = staleReasons(data.header, key);
    if (stale.length === 0) {
      opts.onMessage?.(`latent cache ${path}: ${data.header.shape[0]} latents`);
      return new LatentCache(data, scaling);
    }
    if (opts.explicit) {
      throw new LatentError(
        `${path}: a latent cache of other images or another vae (${stale.join('; ')}); ` +
          'name another file or delete this one',
      );
    }
    opts.onMessage?.(`latent cache ${path} is stale (${stale.join('; ')}): encoding again`);
  }
  const total = key.shape[0];
  opts.onMessage?.(
    `encoding ${total} images${opts.flip ? ' (with their mirror images)' : ''} into ${key.shape.slice(1).join('x')} latents -> ${path}`,
  );
  const latents = await encodeDataset(vae.vae, vae.spec, dataset, {
    flip: opts.flip,
    batchSize: opts.batchSize,
    onProgress: opts.onProgress,
  });
  return new LatentCache(await writeLatentCache(path, key, latents), scaling);
}
