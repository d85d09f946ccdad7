/**
 * Prompt agreement of text-to-emoji samples, by nearest neighbour (docs/latent.md).
 *
 *   sumi sample --model models/emoji-ldm --prompt-file P.txt --n 8 --out-dir S/ ...
 *   npx tsx scripts/emoji-ldm-eval.ts --samples S/ [--json FILE]
 *
 * For each sample, the training emoji nearest to it in pixel space (L2 over the 3×32×32 values in
 * [−1, 1], white background, as the model was trained): a sample "agrees" with its prompt when
 * that neighbour's captions include the prompt, and "agrees in the top 5" when one of its 5
 * nearest does. With 1,911 emoji, choosing a neighbour at random agrees with a given prompt's emoji
 * with probability about 1/1,911. The mean distance to the nearest neighbour is printed beside the
 * mean distance between two different training emoji, for scale; a distance near 0 would mean a
 * copy of a training image.
 */
import { writeFileSync } from 'node:fs';

import { captionsFor, loadEmoji } from '../src/data/index.js';
import { readSampleFolder, readSampleImages } from '../src/eval/sample-folder.js';

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

const samplesDir = arg('samples');
if (samplesDir === undefined) {
  console.error('usage: npx tsx scripts/emoji-ldm-eval.ts --samples DIR [--json FILE]');
  process.exit(2);
}
const size = 32;
const D = 3 * size * size;
const ds = loadEmoji({ size });
const captions = captionsFor(ds);
const train = new Float32Array(ds.length * D);
for (let i = 0; i < ds.length; i++) {
  const img = ds.get(i).image;
  for (let j = 0; j < D; j++) train[i * D + j] = img[j]! * 2 - 1;
}

const folder = await readSampleFolder(samplesDir, [3, size, size]);
const entries = folder.index?.samples ?? [];
if (entries.length !== folder.files.length || entries.some((e) => e.prompt === undefined)) {
  console.error(`${samplesDir}: labels.json must give a prompt for every image`);
  process.exit(1);
}
const images = await readSampleImages(folder, 0, folder.files.length);

function dist(a: Float32Array, ai: number, b: Float32Array, bi: number): number {
  let s = 0;
  for (let j = 0; j < D; j++) {
    const d = a[ai * D + j]! - b[bi * D + j]!;
    s += d * d;
  }
  return Math.sqrt(s);
}

interface Row {
  prompt: string;
  n: number;
  top1: number;
  top5: number;
  nearestDistance: number;
  neighbours: string[];
}
const rows = new Map<string, Row>();
for (let i = 0; i < entries.length; i++) {
  const prompt = entries[i]!.prompt!;
  const ds2 = Array.from({ length: ds.length }, (_, k) => [dist(images, i, train, k), k] as const);
  ds2.sort((a, b) => a[0] - b[0]);
  const has = (k: number) => captions.candidates(k).includes(prompt);
  const row = rows.get(prompt) ?? {
    prompt,
    n: 0,
    top1: 0,
    top5: 0,
    nearestDistance: 0,
    neighbours: [],
  };
  row.n++;
  if (has(ds2[0]![1])) row.top1++;
  if (ds2.slice(0, 5).some(([, k]) => has(k))) row.top5++;
  row.nearestDistance += ds2[0]![0];
  row.neighbours.push(ds.get(ds2[0]![1]).name ?? String(ds2[0]![1]));
  rows.set(prompt, row);
}

// The typical distance between two different training emoji (every 7th pair, for speed).
let pairSum = 0;
let pairs = 0;
for (let a = 0; a < ds.length; a += 7) {
  for (let b = a + 1; b < ds.length; b += 7) {
    pairSum += dist(train, a, train, b);
    pairs++;
  }
}

const all = [...rows.values()];
const total = all.reduce((s, r) => s + r.n, 0);
console.log(
  '| prompt | samples | nearest emoji has the prompt | in the 5 nearest | mean L2 to nearest |',
);
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of all) {
  console.log(
    `| ${r.prompt} | ${r.n} | ${r.top1}/${r.n} | ${r.top5}/${r.n} | ${(r.nearestDistance / r.n).toFixed(2)} |`,
  );
}
const top1 = all.reduce((s, r) => s + r.top1, 0);
const top5 = all.reduce((s, r) => s + r.top5, 0);
const near = all.reduce((s, r) => s + r.nearestDistance, 0) / total;
console.log(
  `| all | ${total} | ${top1}/${total} (${((100 * top1) / total).toFixed(0)}%) | ` +
    `${top5}/${total} (${((100 * top5) / total).toFixed(0)}%) | ${near.toFixed(2)} |`,
);
console.log(`mean L2 between two training emoji: ${(pairSum / pairs).toFixed(2)}`);
for (const r of all) console.log(`${r.prompt}: nearest ${r.neighbours.join(', ')}`);
const json = arg('json');
if (json !== undefined) {
  writeFileSync(
    json,
    JSON.stringify(
      {
        samples: samplesDir,
        meta: folder.index?.meta ?? null,
        total,
        top1,
        top5,
        meanNearestDistance: near,
        meanPairDistance: pairSum / pairs,
        rows: all,
      },
      null,
      2,
    ) + '\n',
  );
}
