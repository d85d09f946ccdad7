/**
 * The ControlNet example of docs/adapters.md: MNIST split into a training set and held-out
 * digits, the condition images of each control kind, and the agreement of samples with the
 * held-out digits' condition images.
 *
 *   npx tsx scripts/controlnet-mnist.ts split OUT
 *     OUT/train/<digit>/NNNN.png: every MNIST digit but each 10th of its class (9,000 images);
 *     OUT/heldout/<digit>/NNNN.png: each 10th (1,000), never seen in training.
 *
 *   npx tsx scripts/controlnet-mnist.ts edges [--control KIND] IMAGE OUT.png
 *     The condition image of an image file (controlMap KIND, as `sumi controlnet map`; default
 *     edges: its Sobel edge map; canny: its Canny edge map; mask: its foreground mask).
 *
 *   npx tsx scripts/controlnet-mnist.ts kinds --heldout OUT/heldout [--n 8] --out FILE.png
 *     A figure: n held-out digits (spread over the classes) in the first row, their condition
 *     images of each kind (edges, canny, mask) in the next, at 3x.
 *
 *   npx tsx scripts/controlnet-mnist.ts eval --base DIR [--controlnet DIR] --heldout OUT/heldout
 *       [--control KIND] [--n 200] [--steps 20] [--sampler dpmpp-2m] [--seed 1] [--scale 1]
 *       [--json FILE] [--grid FILE.png]
 *     For n held-out digits (spread over the classes): their condition images of --control
 *     (default edges; the ControlNet's kind), one sample each from the base alone and, with
 *     --controlnet, from the base under the ControlNet (the same noise), and the agreement of
 *     each sample's condition image of the same kind with the digit's (precision, recall, F1 at 1
 *     and 0 pixels tolerance; for the edge kinds the edge agreement of the two edge maps, for
 *     mask the same scores of the two masks, at 0 pixels their Dice coefficient), averaged over
 *     the images. --grid writes rows of condition, ControlNet sample (with --controlnet), base
 *     sample.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { edgeAgreement, encodePng, loadDataset, loadMnist, readImage } from '../src/data/index.js';
import {
  CONTROL_KINDS,
  type ControlKind,
  controlMap,
  controlOfPlanes,
  createSampler,
  generate,
  loadPipeline,
  parseControlKind,
} from '../src/diffusion/index.js';
import { tensor } from '../src/engine/index.js';
import { ControlledDenoiser, loadControlNet, type UNet2DModel } from '../src/nn/models/index.js';

function arg(name: string, fallback?: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

function usage(message: string): never {
  console.error(`controlnet-mnist: ${message}`);
  process.exit(2);
}

function required(name: string): string {
  const v = arg(name);
  if (v === undefined || v.startsWith('--')) usage(`--${name} is required`);
  return v;
}

function controlKind(): ControlKind {
  try {
    return parseControlKind(arg('control', 'edges'), '--control');
  } catch (e) {
    return usage(e instanceof Error ? e.message : String(e));
  }
}

/** The arguments after the subcommand that are neither options nor their values. */
function positionals(): string[] {
  const out: string[] = [];
  for (let i = 3; i < process.argv.length; i++) {
    if (process.argv[i]!.startsWith('--')) i++;
    else out.push(process.argv[i]!);
  }
  return out;
}

/** n images of a dataset, spread over it (the held-out digits are sorted by class). */
function spread(ds: ReturnType<typeof loadDataset>, n: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => ds.get(Math.floor((i * ds.length) / n)).image);
}

/** Rows of `cols` side×side grey images, each pixel drawn as z×z, as one PNG. */
function gridPng(rows: readonly (readonly ArrayLike<number>[])[], side: number, z = 3): Uint8Array {
  const cols = rows[0]!.length;
  const w = cols * side * z;
  const data = new Uint8Array(rows.length * side * z * w);
  rows.forEach((row, r) => {
    row.forEach((img, c) => {
      for (let y = 0; y < side * z; y++) {
        for (let x = 0; x < side * z; x++) {
          const v = img[Math.floor(y / z) * side + Math.floor(x / z)]!;
          data[(r * side * z + y) * w + c * side * z + x] = Math.round(
            255 * Math.min(1, Math.max(0, v)),
          );
        }
      }
    });
  });
  return encodePng({ width: w, height: rows.length * side * z, channels: 1, data });
}

const pngOf = (v: ArrayLike<number>, side: number): Uint8Array =>
  encodePng({
    width: side,
    height: side,
    channels: 1,
    data: Uint8Array.from(v, (x) => Math.round(255 * Math.min(1, Math.max(0, x)))),
  });

function split(out: string): void {
  const mnist = loadMnist();
  const side = mnist.height;
  const seen = new Array<number>(10).fill(0);
  const counts = { train: 0, heldout: 0 };
  for (let i = 0; i < mnist.length; i++) {
    const { image, label } = mnist.get(i);
    const k = label!;
    const part = seen[k]! % 10 === 0 ? 'heldout' : 'train';
    const dir = join(out, part, String(k));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${String(seen[k]).padStart(4, '0')}.png`), pngOf(image, side));
    seen[k]!++;
    counts[part]++;
  }
  console.log(`${out}: ${counts.train} training digits, ${counts.heldout} held out`);
}

interface Scores {
  precision: number;
  recall: number;
  f1: number;
}

async function evaluate(): Promise<void> {
  const base = required('base');
  const cnDir = arg('controlnet');
  const kind = controlKind();
  const heldoutDir = required('heldout');
  const heldout = loadDataset(heldoutDir, { size: 28, channels: 1 });
  const n = Number(arg('n', '200'));
  const steps = Number(arg('steps', '20'));
  const seed = Number(arg('seed', '1'));
  const scale = Number(arg('scale', '1'));
  const pipe = await loadPipeline(base);
  const unet = pipe.model as UNet2DModel;
  const controlled =
    cnDir === undefined ? null : new ControlledDenoiser(unet, await loadControlNet(cnDir), scale);
  const side = heldout.height;
  const controls = new Float32Array(n * side * side);
  spread(heldout, n).forEach((img, i) =>
    controls.set(controlOfPlanes(kind, img, 1, side, side), i * side * side),
  );
  const sampler = arg('sampler', 'dpmpp-2m')!;
  const batch = 50;
  const run = (withControl: boolean): Float32Array => {
    const out = new Float32Array(n * side * side);
    for (let lo = 0; lo < n; lo += batch) {
      const b = Math.min(batch, n - lo);
      const cond = tensor(controls.slice(lo * side * side, (lo + b) * side * side), [
        b,
        1,
        side,
        side,
      ]);
      const x = generate(
        withControl && controlled !== null ? controlled : unet,
        createSampler(sampler, pipe.schedulerConfig),
        {
          n: b,
          seed: seed + lo,
          numInferenceSteps: steps,
          cond: withControl ? { controlnetCond: cond } : {},
        },
      );
      const v = x.dataSync();
      for (let j = 0; j < v.length; j++) out[lo * side * side + j] = (v[j]! + 1) / 2;
      x.dispose();
      cond.dispose();
      process.stderr.write(`${withControl ? 'controlnet' : 'base'} ${lo + b}/${n}\n`);
    }
    return out;
  };
  // Each sample's condition image of the same kind against the digit's.
  const score = (samples: Float32Array, tolerance: number): Scores => {
    const s = { precision: 0, recall: 0, f1: 0 };
    for (let i = 0; i < n; i++) {
      const at = i * side * side;
      const own = controlOfPlanes(kind, samples.subarray(at, at + side * side), 1, side, side);
      const a = edgeAgreement(own, controls.subarray(at, at + side * side), side, side, tolerance);
      s.precision += a.precision / n;
      s.recall += a.recall / n;
      s.f1 += a.f1 / n;
    }
    return s;
  };
  const withCn = controlled === null ? null : run(true);
  const plain = run(false);
  const result = {
    base,
    controlnet: cnDir ?? null,
    control: kind,
    heldout: heldoutDir,
    n,
    sampler,
    steps,
    seed,
    conditioningScale: controlled === null ? null : scale,
    // Mean over the images of each sample's agreement with its condition, at 1 and 0 pixels.
    scores: {
      ...(withCn === null
        ? {}
        : { controlnet: { tolerance1: score(withCn, 1), tolerance0: score(withCn, 0) } }),
      base: { tolerance1: score(plain, 1), tolerance0: score(plain, 0) },
    },
  };
  const text = `${JSON.stringify(result, null, 2)}\n`;
  process.stdout.write(text);
  const json = arg('json');
  if (json !== undefined) writeFileSync(json, text);
  const grid = arg('grid');
  if (grid !== undefined) {
    // Columns: up to 10 digits; rows: condition, ControlNet sample, base sample; 3x pixels.
    const cols = Math.min(10, n);
    const pick = (src: Float32Array): Float32Array[] =>
      Array.from({ length: cols }, (_, c) => {
        const i = Math.floor((c * n) / cols);
        return src.subarray(i * side * side, (i + 1) * side * side);
      });
    const rows = [pick(controls), ...(withCn === null ? [] : [pick(withCn)]), pick(plain)];
    writeFileSync(grid, gridPng(rows, side));
  }
}

function kinds(): void {
  const heldout = loadDataset(required('heldout'), { size: 28, channels: 1 });
  const out = required('out');
  const n = Number(arg('n', '8'));
  const side = heldout.height;
  const digits = spread(heldout, n);
  const rows = [
    digits,
    ...CONTROL_KINDS.map((k) => digits.map((d) => controlOfPlanes(k, d, 1, side, side))),
  ];
  writeFileSync(out, gridPng(rows, side));
  console.log(`${out}: ${n} digits and their ${CONTROL_KINDS.join(', ')} condition images`);
}

async function edges(input: string, out: string, kind: ControlKind): Promise<void> {
  writeFileSync(out, encodePng(controlMap(kind, await readImage(input))));
}

const cmd = process.argv[2];
const files = positionals();
if (cmd === 'split' && files[0] !== undefined) split(files[0]);
else if (cmd === 'edges' && files.length === 2) {
  await edges(files[0]!, files[1]!, controlKind());
} else if (cmd === 'kinds') kinds();
else if (cmd === 'eval') await evaluate();
else {
  usage(
    'usage: npx tsx scripts/controlnet-mnist.ts split OUT | edges [--control KIND] IMAGE OUT.png | ' +
      'kinds --heldout DIR --out FILE.png | eval --base DIR [--controlnet DIR] --heldout DIR [--control KIND]',
  );
}
