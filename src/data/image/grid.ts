/**
 * From model outputs to images: image tensors [N, C, H, W] with values in [-1, 1] (the range
 * models train on) become 8-bit images and grids of images (PNG and GIF files: save.ts).
 * C is 1 (gray), 3 (RGB) or 4 (RGBA); values outside [-1, 1] are clamped, NaN shows as -1.
 */
import type { Tensor } from '../../engine/index.js';
import { type Channels, planesToImage, type RawImage, toByte } from './image.js';

export interface GridOptions {
  /** Images per row of the grid (torchvision's `nrow`); default ceil(sqrt(N)). */
  nrow?: number;
  /** Pixels between images and around the border (default 2). */
  padding?: number;
  /** Value of the padding, in the images' [-1, 1] range (default 1, white). */
  padValue?: number;
  /** Each image pixel drawn as a scale × scale block (nearest neighbour; default 1). */
  scale?: number;
}

function imageShape(shape: readonly number[], what: string): [number, Channels, number, number] {
  const s = shape.length === 3 ? [1, ...shape] : shape;
  const [n, c, h, w] = s;
  if (s.length !== 4 || n === undefined || c === undefined || h === undefined || w === undefined) {
    throw new Error(
      `${what}: expected images [N, C, H, W] or [C, H, W], got [${shape.join(', ')}]`,
    );
  }
  if (c !== 1 && c !== 3 && c !== 4) {
    throw new Error(`${what}: expected 1, 3 or 4 channels, got shape [${shape.join(', ')}]`);
  }
  return [n, c, h, w];
}

/**
 * Lays out images given as values [N, C, H, W] (or [C, H, W]) in [-1, 1] in a grid: `nrow` per
 * row, `padding` pixels apart. Returns an 8-bit image with C channels.
 */
export function gridFromValues(
  values: ArrayLike<number>,
  shape: readonly number[],
  opts: GridOptions = {},
): RawImage {
  const [n, c, h, w] = imageShape(shape, 'imageGrid');
  if (values.length !== n * c * h * w) {
    throw new Error(`imageGrid: ${values.length} values do not fill [${shape.join(', ')}]`);
  }
  if (n === 0) throw new Error('imageGrid: no images');
  const nrow = Math.max(1, Math.min(n, opts.nrow ?? Math.ceil(Math.sqrt(n))));
  const pad = opts.padding ?? 2;
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`imageGrid: bad padding ${pad}`);
  const scale = opts.scale ?? 1;
  if (!Number.isInteger(scale) || scale < 1 || scale > 64) {
    throw new Error(`imageGrid: scale must be an integer from 1 to 64, got ${scale}`);
  }
  const th = h * scale;
  const tw = w * scale;
  const rows = Math.ceil(n / nrow);
  const width = nrow * (tw + pad) + pad;
  const height = rows * (th + pad) + pad;
  const data = new Uint8Array(width * height * c).fill(toByte(((opts.padValue ?? 1) + 1) * 127.5));
  for (let i = 0; i < n; i++) {
    const top = pad + Math.floor(i / nrow) * (th + pad);
    const left = pad + (i % nrow) * (tw + pad);
    for (let ch = 0; ch < c; ch++) {
      const plane = (i * c + ch) * h * w;
      for (let y = 0; y < th; y++) {
        const d = ((top + y) * width + left) * c + ch;
        const row = plane + Math.floor(y / scale) * w;
        for (let x = 0; x < tw; x++) {
          data[d + x * c] = toByte((values[row + Math.floor(x / scale)]! + 1) * 127.5);
        }
      }
    }
  }
  return { width, height, channels: c, data };
}

/** `gridFromValues` for a tensor (read back from its backend). */
export async function imageGrid(images: Tensor, opts: GridOptions = {}): Promise<RawImage> {
  return gridFromValues(await images.data(), images.shape, opts);
}

/** Each image of a tensor [N, C, H, W] (or [C, H, W]) in [-1, 1] as an 8-bit image. */
export async function tensorToImages(images: Tensor): Promise<RawImage[]> {
  const [n, c, h, w] = imageShape(images.shape, 'tensorToImages');
  const values = await images.data();
  const size = c * h * w;
  return Array.from({ length: n }, (_, i) =>
    planesToImage(values.subarray(i * size, (i + 1) * size), c, h, w, [-1, 1]),
  );
}
