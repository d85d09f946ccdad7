/**
 * The edge ControlNet example of docs/adapters.md: MNIST split into a training set and held-out
 * digits, and the edge agreement of samples with the held-out digits' edge maps.
 *
 *   npx tsx scripts/controlnet-mnist.ts split OUT
 *     OUT/train/<digit>/NNNN.png: every MNIST digit but each 10th of its class (9,000 images);
 *     OUT/heldout/<digit>/NNNN.png: each 10th (1,000), never seen in training.
 *
 *   npx tsx scripts/controlnet-mnist.ts edges IMAGE OUT.png
 *     The condition image of an image file: its Sobel edge map (controlOfPlanes 'edges').
 *
 *   npx tsx scripts/controlnet-mnist.ts eval --base DIR --controlnet DIR --heldout OUT/heldout
 *       [--n 200] [--steps 20] [--sampler dpmpp-2m] [--seed 1] [--scale 1] [--json FILE]
 *       [--grid FILE.png]
 *     For n held-out digits (spread over the classes): their Sobel edge maps as condition
 *     images, one sample each from the base alone and from the base under the ControlNet (the
 *     same noise), and the edge agreement (precision, recall, F1 at 1 and 0 pixels tolerance) of
 *     each sample's edge map with the condition, averaged over the images. --grid writes rows of condition, ControlNet sample,
 *     base sample.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  edgeAgreement,
  encodePng,
  loadDataset,
  loadMnist,
  readImage,
  sobelEdges,
} from '../src/data/index.js';
import { controlOfPlanes, createSampler, generate, loadPipeline } from '../src/diffusion/index.js';
import { tensor } from '../src/engine/index.js';
import { ControlledDenoiser, loadControlNet, type UNet2DModel } from '../src/nn/models/index.js';

function arg(name: string, fallback?: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
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
  const base = arg('base')!;
  const cnDir = arg('controlnet')!;
  const heldout = loadDataset(arg('heldout')!, { size: 28, channels: 1 });
  const n = Number(arg('n', '200'));
  const steps = Number(arg('steps', '20'));
  const seed = Number(arg('seed', '1'));
  const scale = Number(arg('scale', '1'));
  const pipe = await loadPipeline(base);
  const unet = pipe.model as UNet2DModel;
  const controlnet = await loadControlNet(cnDir);
  const controlled = new ControlledDenoiser(unet, controlnet, scale);
  const side = heldout.height;
  const controls = new Float32Array(n * side * side);
  for (let i = 0; i < n; i++) {
    const img = heldout.get(Math.floor((i * heldout.length) / n)).image;
    controls.set(controlOfPlanes('edges', img, 1, side, side), i * side * side);
  }
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
        withControl ? controlled : unet,
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
  const score = (samples: Float32Array, tolerance: number): Scores => {
    const s = { precision: 0, recall: 0, f1: 0 };
    for (let i = 0; i < n; i++) {
      const at = i * side * side;
      const edges = sobelEdges(samples.subarray(at, at + side * side), side, side);
      const a = edgeAgreement(
        edges,
        controls.subarray(at, at + side * side),
        side,
        side,
        tolerance,
      );
      s.precision += a.precision / n;
      s.recall += a.recall / n;
      s.f1 += a.f1 / n;
    }
    return s;
  };
  const withCn = run(true);
  const plain = run(false);
  const result = {
    base,
    controlnet: cnDir,
    heldout: arg('heldout'),
    n,
    sampler,
    steps,
    seed,
    conditioningScale: scale,
    // Mean over the images of each sample's agreement with its condition, at 1 and 0 pixels.
    scores: {
      controlnet: { tolerance1: score(withCn, 1), tolerance0: score(withCn, 0) },
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
    const z = 3;
    const w = cols * side * z;
    const data = new Uint8Array(3 * side * z * w);
    const put = (src: Float32Array, row: number): void => {
      for (let c = 0; c < cols; c++) {
        const i = Math.floor((c * n) / cols);
        for (let y = 0; y < side * z; y++) {
          for (let x = 0; x < side * z; x++) {
            const v = src[i * side * side + Math.floor(y / z) * side + Math.floor(x / z)]!;
            data[(row * side * z + y) * w + c * side * z + x] = Math.round(
              255 * Math.min(1, Math.max(0, v)),
            );
          }
        }
      }
    };
    put(controls, 0);
    put(withCn, 1);
    put(plain, 2);
    writeFileSync(grid, encodePng({ width: w, height: 3 * side * z, channels: 1, data }));
  }
}

async function edges(input: string, out: string): Promise<void> {
  const img = await readImage(input);
  const [c, h, w] = [img.channels >= 3 ? 3 : 1, img.height, img.width];
  const max = img.data instanceof Uint16Array ? 65535 : 255;
  const planes = new Float32Array(c * h * w);
  for (let k = 0; k < c; k++) {
    for (let i = 0; i < h * w; i++) planes[k * h * w + i] = img.data[i * img.channels + k]! / max;
  }
  const e = controlOfPlanes('edges', planes, c, h, w);
  writeFileSync(
    out,
    encodePng({ width: w, height: h, channels: 1, data: Uint8Array.from(e, (v) => 255 * v) }),
  );
}

const cmd = process.argv[2];
if (cmd === 'split' && process.argv[3] !== undefined) split(process.argv[3]);
else if (cmd === 'edges' && process.argv[4] !== undefined) {
  await edges(process.argv[3]!, process.argv[4]);
} else if (cmd === 'eval') await evaluate();
else {
  console.error(
    'usage: npx tsx scripts/controlnet-mnist.ts split OUT | edges IMAGE OUT.png | eval --base DIR --controlnet DIR --heldout DIR',
  );
  process.exit(2);
}
