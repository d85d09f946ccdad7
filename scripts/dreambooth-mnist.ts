/**
 * The measurements and the figure of the DreamBooth example of docs/adapters.md, on folders of
 * 28×28 gray PNGs (`sumi sample --out-dir`, the instance folder):
 *
 *   npx tsx scripts/dreambooth-mnist.ts stats DIR... [--json FILE]
 *     per folder: images, ink (the fraction of pixels above half brightness) and stroke width
 *     w = 2A / P, where A is the number of ink pixels and P the number of ink/background edges
 *     between 4-neighbours (the image border counting as background): a stroke of width w and
 *     length L ≫ w has A ≈ wL and P ≈ 2L.
 *   npx tsx scripts/dreambooth-mnist.ts grid --out FILE [--n 10] [--scale 2] DIR...
 *     one row per folder: its first n images (sorted by name).
 */
import { readFileSync, writeFileSync } from 'node:fs';

import { decodePng, encodePng, findImages, gridFromValues } from '../src/data/index.js';

const usage = (): never => {
  console.error(
    'usage: npx tsx scripts/dreambooth-mnist.ts stats DIR... [--json FILE]\n' +
      '       npx tsx scripts/dreambooth-mnist.ts grid --out FILE [--n 10] [--scale 2] DIR...',
  );
  process.exit(2);
};

/** The value of `--name V` in args (removed from them), or undefined. */
function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined) usage();
  args.splice(i, 2);
  return v;
}

/** The gray levels in [0, 1] of a folder's PNGs (sorted by path), each side × side. */
function readFolder(dir: string): { side: number; images: Float32Array[] } {
  const files = findImages(dir).filter((f) => f.toLowerCase().endsWith('.png'));
  if (files.length === 0) throw new Error(`${dir}: no PNG images`);
  let side = 0;
  const images = files.map((f) => {
    const img = decodePng(readFileSync(f), f);
    if (img.width !== img.height || (side !== 0 && img.width !== side)) {
      throw new Error(`${f}: ${img.width}x${img.height}, expected ${side || img.width} square`);
    }
    side = img.width;
    const c = img.channels;
    const out = new Float32Array(side * side);
    // The first channel (gray, or red of an RGB image written from a gray one).
    for (let p = 0; p < out.length; p++) out[p] = img.data[p * c]! / 255;
    return out;
  });
  return { side, images };
}

interface FolderStats {
  dir: string;
  images: number;
  ink: number;
  strokeWidth: number;
}

function stats(dir: string): FolderStats {
  const { side, images } = readFolder(dir);
  let ink = 0;
  let width = 0;
  for (const img of images) {
    const on = (y: number, x: number): boolean =>
      y >= 0 && y < side && x >= 0 && x < side && img[y * side + x]! > 0.5;
    let area = 0;
    let edges = 0;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        if (!on(y, x)) continue;
        area++;
        for (const [dy, dx] of [
          [-1, 0],
          [1, 0],
          [0, -1],
          [0, 1],
        ] as const) {
          if (!on(y + dy, x + dx)) edges++;
        }
      }
    }
    ink += area / (side * side);
    width += edges === 0 ? 0 : (2 * area) / edges;
  }
  return {
    dir,
    images: images.length,
    ink: ink / images.length,
    strokeWidth: width / images.length,
  };
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'stats') {
  const json = option(rest, 'json');
  if (rest.length === 0) usage();
  const all = rest.map(stats);
  for (const s of all) {
    console.log(
      `${s.dir}: ${s.images} images, ink ${s.ink.toFixed(3)}, stroke width ${s.strokeWidth.toFixed(2)} px`,
    );
  }
  if (json !== undefined) writeFileSync(json, `${JSON.stringify(all, null, 2)}\n`);
} else if (command === 'grid') {
  const out = option(rest, 'out') ?? usage();
  const n = Number(option(rest, 'n') ?? 10);
  const scale = Number(option(rest, 'scale') ?? 2);
  if (rest.length === 0 || !Number.isInteger(n) || n < 1) usage();
  const rows = rest.map(readFolder);
  const side = rows[0]!.side;
  if (rows.some((r) => r.side !== side)) throw new Error('the folders hold images of other sizes');
  const values = new Float32Array(rows.length * n * side * side).fill(1);
  rows.forEach((r, i) => {
    r.images.slice(0, n).forEach((img, j) => {
      const at = (i * n + j) * side * side;
      for (let p = 0; p < img.length; p++) values[at + p] = img[p]! * 2 - 1;
    });
  });
  const grid = gridFromValues(values, [rows.length * n, 1, side, side], { nrow: n, scale });
  writeFileSync(out, encodePng(grid));
  console.log(`${out}: ${rows.length} rows of ${n}`);
} else {
  usage();
}
