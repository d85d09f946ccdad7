/**
 * A small style-transfer set for the LoRA example of docs/adapters.md: MNIST digits with their
 * strokes thickened by a 3×3 maximum filter (y[i, j] = max over |di|, |dj| ≤ 1 of x[i + di, j + dj]),
 * written as 28×28 gray PNGs into one folder per class (`OUT/0/…png` … `OUT/9/…png`), which
 * `sumi train --data OUT` reads with the classes 0–9 of MNIST.
 *
 *   npx tsx scripts/bold-mnist.ts OUT [--per-class 200]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { encodePng, loadMnist } from '../src/data/index.js';

const out = process.argv[2];
if (out === undefined || out.startsWith('--')) {
  console.error('usage: npx tsx scripts/bold-mnist.ts OUT [--per-class 200]');
  process.exit(2);
}
const at = process.argv.indexOf('--per-class');
const perClass = at >= 0 ? Number(process.argv[at + 1]) : 200;

const mnist = loadMnist();
const side = mnist.height;
const count = new Array<number>(10).fill(0);
for (let i = 0; i < mnist.length && count.some((c) => c < perClass); i++) {
  const { image, label } = mnist.get(i);
  const k = label!;
  if (count[k]! >= perClass) continue;
  const data = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let m = 0;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < side && xx >= 0 && xx < side) m = Math.max(m, image[yy * side + xx]!);
        }
      }
      data[y * side + x] = Math.round(255 * m);
    }
  }
  const dir = join(out, String(k));
  mkdirSync(dir, { recursive: true });
  const name = `${String(count[k]).padStart(4, '0')}.png`;
  writeFileSync(join(dir, name), encodePng({ width: side, height: side, channels: 1, data }));
  count[k]!++;
}
console.log(
  `${out}: ${count.reduce((a, b) => a + b, 0)} bold digits (${count.join(', ')} per class)`,
);
