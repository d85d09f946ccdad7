/**
 * Folders of generated samples: one PNG per image and a `labels.json` that says what each image
 * was conditioned on, written by `sumi eval fd --save-samples` (and by `writeSampleFolder` for any
 * caller) and scored by `sumi eval fd --samples`.
 *
 *   <dir>/000000.png, 000001.png, ...   8-bit gray or RGB, the model's image size
 *   <dir>/labels.json                   {"format": "sumi-samples", "version": 1, "seed": S,
 *                                        "count": n, "channels": C, "imageSize": [H, W], ...,
 *                                        "samples": [{"file": "000000.png", "label": 3}, ...]}
 *
 * A sample entry has "label" (the class the image should show: the class it was conditioned on, or
 * the one classifier guidance or a class prompt asked for), "prompt" (the text it was conditioned
 * on), both, or neither (unconditional). Values are quantized to 8 bits the way a PNG stores them
 * (`quantizeToByte`), so images scored from a folder give the same numbers as the same images
 * scored straight after sampling.
 */
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

import {
  decodePng,
  encodePng,
  findImages,
  imageToPlanes,
  planesToImage,
  toByte,
} from '../data/index.js';
import type { ConditionValue } from '../diffusion/index.js';
import type { Tensor } from '../engine/index.js';
import { writeFileAtomic } from '../nn/models/index.js';
import { EvalInputError, formatShape } from './reference.js';

export const SAMPLES_FILE = 'labels.json';

/** One entry of labels.json. */
export interface SampleEntry {
  file: string;
  label?: number;
  prompt?: string;
}

/** labels.json. */
export interface SampleIndex {
  format: 'sumi-samples';
  version: 1;
  seed: number;
  count: number;
  channels: number;
  imageSize: [number, number];
  /** How the samples were made (model, sampler, steps, guidance, ...). */
  meta?: Record<string, unknown>;
  samples: SampleEntry[];
}

/**
 * Values in [−1, 1] (clamped; NaN as −1) quantized to the 8-bit grid b = round(127.5 (v + 1)) and
 * mapped back as a PNG reader sees them: fround(fround(b / 255) · 2 − 1), in place.
 */
export function quantizeToByte(values: Float32Array): Float32Array {
  for (let i = 0; i < values.length; i++)
    values[i] = byteToSigned(toByte((values[i]! + 1) * 127.5));
  return values;
}

const INV255 = 1 / 255;

/** A stored 8-bit sample as the [−1, 1] value every path of the evaluation uses. */
function byteToSigned(b: number): number {
  return Math.fround(Math.fround(b * INV255) * 2 - 1);
}

function name(i: number): string {
  return `${String(i).padStart(6, '0')}.png`;
}

/** The entry of one image: its class (asked for, or the class id it was conditioned on), its prompt. */
function entryOf(
  file: string,
  v: ConditionValue | undefined,
  cls: number | null | undefined,
): SampleEntry {
  const label = cls ?? (typeof v === 'number' ? v : null);
  return {
    file,
    ...(label !== null ? { label } : {}),
    ...(typeof v === 'string' ? { prompt: v } : {}),
  };
}

/**
 * Writes samples into a folder as they come (`add` per batch), then labels.json (`finish`).
 * The folder must not exist or be empty.
 */
export class SampleFolderWriter {
  readonly dir: string;
  readonly #entries: SampleEntry[] = [];
  #shape: [number, number, number] | null = null;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Checks that `dir` is absent or empty (an EvalInputError otherwise) and creates it. */
  static async create(dir: string): Promise<SampleFolderWriter> {
    await checkEmptyOrAbsent(dir);
    await mkdir(dir, { recursive: true });
    return new SampleFolderWriter(dir);
  }

  get count(): number {
    return this.#entries.length;
  }

  /**
   * Adds images [B, C, H, W] with values in [−1, 1] (C = 1 or 3), what each was conditioned on
   * (a class id, a prompt; null entries or a null list: nothing) and the class each should show
   * when that is not its condition (classifier guidance, class prompts).
   */
  async add(
    values: ArrayLike<number>,
    shape: readonly number[],
    conditions: readonly ConditionValue[] | null,
    classes: readonly (number | null)[] | null = null,
  ): Promise<void> {
    const [b, c, h, w] = shape as [number, number, number, number];
    if (shape.length !== 4 || (c !== 1 && c !== 3)) {
      throw new Error(
        `sample folder: expected images [B, 1 or 3, H, W], got [${shape.join(', ')}]`,
      );
    }
    if (values.length !== b * c * h * w)
      throw new Error('sample folder: values do not fill the shape');
    if (conditions !== null && conditions.length !== b) {
      throw new Error(`sample folder: ${conditions.length} conditions for ${b} images`);
    }
    if (classes !== null && classes.length !== b) {
      throw new Error(`sample folder: ${classes.length} classes for ${b} images`);
    }
    if (this.#shape === null) this.#shape = [c, h, w];
    else if (formatShape(this.#shape) !== formatShape([c, h, w])) {
      throw new Error(
        `sample folder: images changed from ${formatShape(this.#shape)} to ${formatShape([c, h, w])}`,
      );
    }
    const size = c * h * w;
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    for (let i = 0; i < b; i++) {
      const file = name(this.#entries.length);
      const img = planesToImage(data.subarray(i * size, (i + 1) * size), c, h, w, [-1, 1]);
      await writeFile(join(this.dir, file), encodePng(img));
      this.#entries.push(entryOf(file, conditions?.[i], classes?.[i]));
    }
  }

  /** Writes labels.json (atomically: its presence marks a complete folder); returns the index. */
  async finish(seed: number, meta: Record<string, unknown> = {}): Promise<SampleIndex> {
    const [c, h, w] = this.#shape ?? [0, 0, 0];
    const index: SampleIndex = {
      format: 'sumi-samples',
      version: 1,
      seed,
      count: this.#entries.length,
      channels: c,
      imageSize: [h, w],
      ...(Object.keys(meta).length > 0 ? { meta } : {}),
      samples: this.#entries,
    };
    await writeFileAtomic(join(this.dir, SAMPLES_FILE), `${JSON.stringify(index, null, 1)}\n`);
    return index;
  }
}

/** Throws an EvalInputError unless `dir` is absent or an empty folder. */
export async function checkEmptyOrAbsent(dir: string): Promise<void> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new EvalInputError(`${dir} is not a folder`);
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (names.length > 0) {
    throw new EvalInputError(`${dir} is not empty; samples go into a new or empty folder`);
  }
}

/**
 * Writes images [N, C, H, W] in [−1, 1] as individual PNGs (000000.png, ...) and labels.json with
 * what each image was conditioned on (a class id, a prompt, null), the seed, and optionally the
 * class each image should show (`classes`, for classifier guidance and class prompts) and how the
 * images were made (`meta`). `dir` must not exist or be empty. Returns the index written.
 */
export async function writeSampleFolder(
  dir: string,
  images: Tensor,
  conditions: readonly ConditionValue[] | null,
  seed: number,
  opts: { classes?: readonly (number | null)[] | null; meta?: Record<string, unknown> } = {},
): Promise<SampleIndex> {
  const writer = await SampleFolderWriter.create(dir);
  await writer.add(await images.data(), images.shape, conditions, opts.classes ?? null);
  return writer.finish(seed, opts.meta ?? {});
}

/** A folder of samples, its files listed and checked but not yet decoded. */
export interface SampleFolder {
  dir: string;
  /** Paths of the PNG files, in labels.json's order when it exists, else sorted. */
  files: string[];
  /** The class each image should show, when labels.json gives one for every image; else null. */
  requested: number[] | null;
  index: SampleIndex | null;
  shape: [number, number, number];
}

/** Width, height and channels (1 gray, 3 colour) from a PNG's IHDR chunk, without decoding. */
async function pngHeader(
  path: string,
): Promise<{ width: number; height: number; channels: 1 | 3 }> {
  const handle = await open(path, 'r');
  const head = Buffer.alloc(26);
  try {
    await handle.read(head, 0, 26, 0);
  } finally {
    await handle.close();
  }
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!sig.every((b, i) => head[i] === b) || head.toString('latin1', 12, 16) !== 'IHDR') {
    throw new EvalInputError(`${path}: not a PNG file`);
  }
  const colorType = head[25]!;
  return {
    width: head.readUInt32BE(16),
    height: head.readUInt32BE(20),
    channels: colorType === 0 || colorType === 4 ? 1 : 3,
  };
}

function parseIndex(text: string, path: string): SampleIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EvalInputError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const idx = json as Partial<SampleIndex> | null;
  if (idx?.format !== 'sumi-samples' || !Array.isArray(idx.samples)) {
    throw new EvalInputError(`${path}: not a sumi-samples labels.json`);
  }
  return idx as SampleIndex;
}

/**
 * Lists and checks a samples folder: at least one PNG, every PNG of `shape` [C, H, W] (an
 * EvalInputError naming the first that is not), labels.json (when present) naming existing files.
 */
export async function readSampleFolder(
  dir: string,
  shape: readonly [number, number, number],
): Promise<SampleFolder> {
  let found: string[];
  try {
    found = findImages(dir).filter((f) => f.toLowerCase().endsWith('.png'));
  } catch (e) {
    throw new EvalInputError(`--samples: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (found.length === 0)
    throw new EvalInputError(`--samples ${dir}: the folder has no PNG images`);
  let index: SampleIndex | null = null;
  let files = found;
  let requested: number[] | null = null;
  const indexPath = join(dir, SAMPLES_FILE);
  const text = await readFile(indexPath, 'utf8').catch(() => null);
  if (text !== null) {
    index = parseIndex(text, indexPath);
    const present = new Set(found.map((f) => relative(dir, f).split(sep).join('/')));
    const missing = index.samples.find((s) => !present.has(s.file));
    if (missing !== undefined) {
      throw new EvalInputError(`${indexPath}: lists ${missing.file}, which is not in the folder`);
    }
    if (index.samples.length === 0) throw new EvalInputError(`${indexPath}: lists no samples`);
    files = index.samples.map((s) => join(dir, s.file));
    if (index.samples.every((s) => Number.isInteger(s.label) && s.label! >= 0)) {
      requested = index.samples.map((s) => s.label!);
    }
  }
  const [c, h, w] = shape;
  for (const f of files) {
    const hd = await pngHeader(f);
    if (hd.channels !== c || hd.height !== h || hd.width !== w) {
      throw new EvalInputError(
        `${f} is a ${formatShape([hd.channels, hd.height, hd.width])} image; the classifier takes ${formatShape(shape)}`,
      );
    }
  }
  return { dir, files, requested, index, shape: [c, h, w] };
}

/** Images start … start+count−1 of a folder as values [count, C, H, W] in [−1, 1]. */
export async function readSampleImages(
  folder: SampleFolder,
  start: number,
  count: number,
): Promise<Float32Array> {
  const [c, h, w] = folder.shape;
  const size = c * h * w;
  const out = new Float32Array(count * size);
  for (let i = 0; i < count; i++) {
    const path = folder.files[start + i]!;
    const planes = imageToPlanes(decodePng(await readFile(path), path), c as 1 | 3);
    for (let j = 0; j < size; j++) out[i * size + j] = Math.fround(planes[j]! * 2 - 1);
  }
  return out;
}
