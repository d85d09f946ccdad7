/** Writing images, or image tensors in [-1, 1] laid out as grids, to PNG and GIF files. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import { Tensor } from '../../engine/index.js';
import { encodeGif, type GifOptions } from './gif.js';
import { type GridOptions, imageGrid } from './grid.js';
import type { RawImage } from './image.js';
import { encodePng, type PngEncodeOptions } from './png.js';

async function writeCreatingDir(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}

/** Writes an image, or a tensor of images in [-1, 1] laid out as a grid, as a PNG file. */
export async function savePng(
  path: string,
  image: RawImage | Tensor,
  opts: GridOptions & PngEncodeOptions = {},
): Promise<void> {
  const img = image instanceof Tensor ? await imageGrid(image, opts) : image;
  await writeCreatingDir(path, encodePng(img, opts));
}

/**
 * Writes an animated GIF. Frames are images, or tensors of images in [-1, 1], each laid out as a
 * grid (for a denoising animation: one tensor per sampler step).
 */
export async function saveGif(
  path: string,
  frames: readonly (RawImage | Tensor)[],
  opts: GridOptions & GifOptions = {},
): Promise<void> {
  const images: RawImage[] = [];
  for (const f of frames) images.push(f instanceof Tensor ? await imageGrid(f, opts) : f);
  await writeCreatingDir(path, encodeGif(images, opts));
}
