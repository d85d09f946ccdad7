/**
 * DreamBooth (Ruiz et al. 2022, "DreamBooth: Fine Tuning Text-to-Image Diffusion Models for
 * Subject-Driven Generation"): a text-to-image model learns a subject from a few instance images
 * x shown with a prompt c_inst that holds a rare identifier ("a sks digit"), while class images
 * x_pr, sampled from the frozen base with the class prompt c_pr ("a digit") before training, keep
 * what the model makes of the class (the class-specific prior preservation loss, their eq. 2):
 *
 *   L = E ‖x̂_θ(α_t x + σ_t ε, c_inst) − x‖² + λ E ‖x̂_θ(α_t' x_pr + σ_t' ε', c_pr) − x_pr‖²
 *
 * here in the run's own parameterization (ε, x_0 or v; each term a mean over its images). Each
 * step's batch is B instance images (the run's DataLoader) followed by B class images (a second
 * DataLoader over them, seeded by stream (seed, 'prior_data')); the two halves are the step's two
 * parts, with weights 1 and λ (trainer.ts). The prompts are never dropped, and the base's
 * tokenizer and text encoder stay frozen.
 *
 * The class images are sampled once, with the noise of stream (seed, 'prior'), and kept in the run
 * folder (`class_images.safetensors`): a re-run or a resumption reads them. Format (version 1): a
 * safetensors file whose `__metadata__` holds `format` ('sumi-class-images'), `version` ('1') and
 * `header` (a JSON ClassImagesHeader: the base's folder and the sha256 of its denoiser and text
 * encoder weights, the prompt, the count, the seed, the sampler with its steps and guidance, the
 * scheduler config, the shape, and the sha256 of the pixels); one tensor `images` [N, C, H, W],
 * F32 in [0, 1]. A cache made from anything else is sampled again; a corrupt one is an error.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import {
  checkIndex,
  type Dataset,
  findImages,
  type ImageFileDataset,
  loadImageFolder,
  loadTokenizer,
  readImageSync,
  type Sample,
} from '../../data/index.js';
import {
  HeaderDiff,
  parseVersionedSafetensors,
  serializeVersionedSafetensors,
  versionedTensorF32,
} from '../../nn/index.js';
import { CLIP_TEXT_WEIGHTS_NAME } from '../../nn/models/clip-text.js';
import { type Denoiser, writeFileAtomic } from '../../nn/models/index.js';
import type { ConditionSource } from '../conditioning.js';
import {
  createSampler,
  generateBatches,
  type LoadedPipeline,
  resolveModelDir,
} from '../pipeline.js';
import { type DreamBoothTrainConfig, TrainConfigError } from './config.js';
import { streamSeed } from './streams.js';
import { isFile } from '../files.js';

/** A DreamBooth run asked of something it cannot train: a usage error (`sumi train` exits 2). */
export class DreamBoothInputError extends TrainConfigError {
  override name = 'DreamBoothInputError';
}

/** sha256 (hex) of a file, read in chunks. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Instance images (and as many class images) per step unless the run gives its batch size. */
export const DREAMBOOTH_BATCH_SIZE = 4;

/** Whether a DreamBooth run draws class images: a class prompt and λ > 0. */
export function hasClassImages(d: DreamBoothTrainConfig): boolean {
  return d.classPrompt !== null && d.priorLossWeight > 0;
}

/**
 * Refuses a base that is not a pixel text-to-image pipeline (a class-conditional or
 * unconditional model has no tokenizer and text encoder to read the prompts; a latent one would
 * need its images encoded), before anything is loaded.
 */
export async function checkDreamBoothBase(dir: string): Promise<void> {
  const layout = await resolveModelDir(dir);
  if (layout.vaeDir !== null) {
    throw new DreamBoothInputError(
      `the base ${dir} is a latent diffusion model (vae/); DreamBooth trains pixel models only`,
    );
  }
  if (layout.textEncoderDir === null || layout.tokenizerDir === null) {
    const info = layout.info;
    const kind =
      info?.conditioning === 'class' || (info?.numClasses ?? null) !== null
        ? 'class-conditional'
        : info?.conditioning === 'text'
          ? 'text-conditioned but incomplete'
          : 'unconditional';
    throw new DreamBoothInputError(
      `the base ${dir} is ${kind} (no tokenizer/ and text_encoder/): DreamBooth fine-tunes a ` +
        'text-to-image model, whose prompts name the subject',
    );
  }
}

/**
 * The words of `prompt` the base's tokenizer does not know: each encodes as <|unk|>, one token
 * for them all (a word-level vocabulary has no sub-words to spell a rare identifier with).
 */
export async function unknownWords(baseDir: string, prompt: string): Promise<string[]> {
  const layout = await resolveModelDir(baseDir);
  if (layout.tokenizerDir === null) return [];
  const tokenizer = await loadTokenizer(layout.tokenizerDir);
  return tokenizer.tokenize(prompt).filter((w) => tokenizer.tokenToId(w) === tokenizer.unkTokenId);
}

/** The channels an image file may have for a model of `channels`: gray(+alpha) or RGB(A). */
const FILE_CHANNELS: Record<1 | 3, readonly number[]> = { 1: [1, 2], 3: [3, 4] };
const CHANNEL_NAMES: Record<number, string> = { 1: 'gray', 2: 'gray', 3: 'RGB', 4: 'RGB' };

/**
 * The instance images of `dir`, every one checked to be the base's size and channels (they are
 * not resized: a few images of the subject are worth looking at as they are) and read now.
 */
export function loadInstanceImages(
  dir: string,
  shape: { size: number; channels: 1 | 3 },
): ImageFileDataset {
  let files: string[];
  try {
    files = findImages(dir);
  } catch (e) {
    throw new DreamBoothInputError(
      `instance images: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (files.length === 0) {
    throw new DreamBoothInputError(`instance images: '${dir}' has no PNG or JPEG images`);
  }
  const want = `${shape.size}x${shape.size} ${CHANNEL_NAMES[shape.channels]}`;
  for (const f of files) {
    let img;
    try {
      img = readImageSync(f);
    } catch (e) {
      throw new DreamBoothInputError(
        `instance images: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    if (
      img.width !== shape.size ||
      img.height !== shape.size ||
      !FILE_CHANNELS[shape.channels].includes(img.channels)
    ) {
      throw new DreamBoothInputError(
        `instance images: ${f} is ${img.width}x${img.height} ${CHANNEL_NAMES[img.channels]}; ` +
          `the base takes ${want} images`,
      );
    }
  }
  return loadImageFolder(dir, { size: shape.size, channels: shape.channels }).preload();
}

// ---- the class images ---------------------------------------------------------------------------

export const CLASS_IMAGES_FILE = 'class_images.safetensors';
export const CLASS_IMAGES_FORMAT = 'sumi-class-images';
export const CLASS_IMAGES_VERSION = 1;

/** What a class-image cache was sampled from (see the module comment). */
export interface ClassImagesHeader {
  format: typeof CLASS_IMAGES_FORMAT;
  version: typeof CLASS_IMAGES_VERSION;
  base: { dir: string; unetSha256: string; textEncoderSha256: string };
  prompt: string;
  count: number;
  /** The run's seed: the noise is stream (seed, 'prior'). */
  seed: number;
  sampler: { name: string; steps: number; guidance: number };
  /** The diffusers scheduler config the sampler runs over. */
  scheduler: Record<string, unknown>;
  /** [count, C, H, W]. */
  shape: [number, number, number, number];
  /** sha256 of the `images` tensor's float32 bytes. */
  dataSha256: string;
}

/** The header a cache made now would have, but for its data's hash. */
export type ClassImagesKey = Omit<ClassImagesHeader, 'dataSha256'>;

/** Class images with what they were sampled from. */
export interface ClassImagesData {
  header: ClassImagesHeader;
  /** [count, C, H, W] in [0, 1]. */
  images: Float32Array;
}

/** The frozen base the class images are sampled from. */
export interface ClassImagesBase {
  model: Denoiser;
  condition: ConditionSource;
  /** sha256 of its denoiser's and its text encoder's weights files. */
  unetSha256: string;
  textEncoderSha256: string;
}

/** The key of the class images a DreamBooth config asks for. */
export function classImagesKey(
  config: {
    seed: number;
    imageSize: number;
    channels: number;
    scheduler: Record<string, unknown>;
    dreambooth: DreamBoothTrainConfig;
  },
  base: Pick<ClassImagesBase, 'unetSha256' | 'textEncoderSha256'>,
): ClassImagesKey {
  const d = config.dreambooth;
  if (d.classPrompt === null) throw new TrainConfigError('a DreamBooth run without a class prompt');
  return {
    format: CLASS_IMAGES_FORMAT,
    version: CLASS_IMAGES_VERSION,
    base: { dir: d.base, unetSha256: base.unetSha256, textEncoderSha256: base.textEncoderSha256 },
    prompt: d.classPrompt,
    count: d.numClassImages,
    seed: config.seed,
    sampler: { name: d.prior.sampler, steps: d.prior.steps, guidance: d.prior.guidance },
    scheduler: config.scheduler,
    shape: [d.numClassImages, config.channels, config.imageSize, config.imageSize],
  };
}

function pixelsSha256(images: Float32Array): string {
  return createHash('sha256')
    .update(new Uint8Array(images.buffer, images.byteOffset, images.byteLength))
    .digest('hex');
}

/** The cache file's bytes. */
export function serializeClassImages(c: ClassImagesData): Uint8Array {
  return serializeVersionedSafetensors(
    [{ name: 'images', shape: c.header.shape, data: c.images }],
    { format: CLASS_IMAGES_FORMAT, version: CLASS_IMAGES_VERSION, header: c.header },
  );
}

/**
 * A cache file's contents, its pixels checked against the sha256 its header records; anything
 * else (a truncated or altered file, another format) is a TrainConfigError naming `source`.
 */
export function parseClassImages(bytes: Uint8Array, source: string): ClassImagesData {
  const corrupt = (why: string): never => {
    throw new TrainConfigError(
      `${source}: not a usable class-image cache (${why}); delete it to sample the class images again`,
    );
  };
  const { file, header } = parseVersionedSafetensors<ClassImagesHeader>(bytes, source, {
    format: CLASS_IMAGES_FORMAT,
    version: CLASS_IMAGES_VERSION,
    corrupt,
  });
  const images = versionedTensorF32(file, 'images', header.shape, corrupt);
  if (pixelsSha256(images) !== header.dataSha256) {
    return corrupt('its pixels do not match the sha256 its header records');
  }
  return { header, images };
}

/** What differs between a cache's header and the one wanted, each named with both values. */
export function classImagesStale(have: ClassImagesHeader, want: ClassImagesKey): string[] {
  const d = new HeaderDiff();
  d.value('base denoiser sha256', have.base?.unetSha256, want.base.unetSha256);
  d.value('base text encoder sha256', have.base?.textEncoderSha256, want.base.textEncoderSha256);
  d.value('prompt', have.prompt, want.prompt);
  d.value('count', have.count, want.count);
  d.value('seed', have.seed, want.seed);
  d.value('sampler', have.sampler, want.sampler);
  d.whole('the scheduler config differs', have.scheduler, want.scheduler);
  d.value('shape', have.shape, want.shape);
  return d.reasons;
}

/**
 * Samples the class images of `key` from the base: `key.count` images of the class prompt, image
 * k from the noise of image k of stream (seed, 'prior'), whatever the batching.
 */
export async function sampleClassImages(
  base: Pick<ClassImagesBase, 'model' | 'condition'>,
  key: ClassImagesKey,
  opts: { batchSize?: number; onProgress?: (p: { done: number; total: number }) => void } = {},
): Promise<Float32Array> {
  const [n, c, h, w] = key.shape;
  const per = c * h * w;
  const images = new Float32Array(n * per);
  await generateBatches(base.model, createSampler(key.sampler.name, key.scheduler), {
    seed: streamSeed(key.seed, 'prior'),
    numInferenceSteps: key.sampler.steps,
    batchSize: opts.batchSize ?? 25,
    condition: base.condition,
    request: {
      values: Array.from({ length: n }, () => key.prompt),
      guidanceScale: key.sampler.guidance,
    },
    onBatch: async (x, batch) => {
      const v = await x.data();
      // x_0 in about [−1, 1] to the dataset's [0, 1], as an image file would be read.
      for (let j = 0; j < batch.size * per; j++) {
        images[batch.start * per + j] = Math.min(1, Math.max(0, (v[j]! + 1) / 2));
      }
      opts.onProgress?.({ done: batch.start + batch.size, total: n });
    },
  });
  return images;
}

export interface OpenClassImagesOptions {
  /** The cache file (the run folder's CLASS_IMAGES_FILE). */
  path: string;
  key: ClassImagesKey;
  base: Pick<ClassImagesBase, 'model' | 'condition'>;
  onMessage?: (line: string) => void;
  onProgress?: (p: { done: number; total: number }) => void;
}

/**
 * The class images of `key`: the cache at `path` when it was made from the same base, prompt,
 * count, seed and sampler; otherwise sampled now and written there (a temporary file, then a
 * rename). A corrupt cache is an error, and is left as it is.
 */
export async function openClassImages(opts: OpenClassImagesOptions): Promise<ClassImagesData> {
  const { path, key } = opts;
  if (await isFile(path)) {
    const data = parseClassImages(new Uint8Array(await readFile(path)), path);
    const stale = classImagesStale(data.header, key);
    if (stale.length === 0) {
      opts.onMessage?.(`class images ${path}: ${key.count} of '${key.prompt}'`);
      return data;
    }
    opts.onMessage?.(`class images ${path} are stale (${stale.join('; ')}): sampling again`);
  }
  const s = key.sampler;
  opts.onMessage?.(
    `sampling ${key.count} class images of '${key.prompt}' from ${key.base.dir} ` +
      `(${s.name}, ${s.steps} steps, guidance ${s.guidance}) -> ${path}`,
  );
  const images = await sampleClassImages(opts.base, key, { onProgress: opts.onProgress });
  const data: ClassImagesData = { header: { ...key, dataSha256: pixelsSha256(images) }, images };
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, serializeClassImages(data));
  return data;
}

/** Class images as a dataset (no labels): what the run's second DataLoader reads. */
export class ClassImageDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly channels: 1 | 3;
  readonly height: number;
  readonly width: number;
  readonly #images: Float32Array;

  constructor(data: ClassImagesData, name: string) {
    const [n, c, h, w] = data.header.shape;
    if (c !== 1 && c !== 3) throw new TrainConfigError(`${name}: ${c}-channel class images`);
    this.name = name;
    this.length = n;
    this.channels = c;
    this.height = h;
    this.width = w;
    this.#images = data.images;
  }

  get(i: number): Sample {
    checkIndex(this, i);
    const per = this.channels * this.height * this.width;
    return { image: this.#images.slice(i * per, (i + 1) * per), name: `class image ${i}` };
  }
}

/**
 * The condition dropout a base was trained with (what its sumi.json or trainer state records;
 * 0 when neither does), so that a DreamBooth model's sumi.json keeps its null prompt usable.
 */
export async function baseConditionDropout(p: LoadedPipeline): Promise<number> {
  if (p.info?.conditionDropout !== undefined) return p.info.conditionDropout;
  try {
    const st = JSON.parse(await readFile(join(p.layout.root, 'trainer_state.json'), 'utf8')) as {
      config?: { labelDropout?: unknown };
    };
    const v = st.config?.labelDropout;
    return typeof v === 'number' ? v : 0;
  } catch {
    return 0;
  }
}

/** The weights file of a loaded pipeline's text encoder (its EMA twin when that was loaded). */
export function textEncoderWeightsPath(p: LoadedPipeline): string {
  const l = p.layout;
  const dir =
    p.weights === 'ema' && l.textEncoderEmaDir !== null ? l.textEncoderEmaDir : l.textEncoderDir;
  if (dir === null) throw new DreamBoothInputError(`${l.root}: no text_encoder/`);
  return join(dir, CLIP_TEXT_WEIGHTS_NAME);
}
