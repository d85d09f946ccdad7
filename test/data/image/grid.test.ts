import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { tensor } from '../../../src/engine/index.js';
import { gridFromValues, imageGrid, tensorToImages } from '../../../src/data/image/grid.js';
import { saveGif, savePng } from '../../../src/data/image/save.js';
import { decodePng } from '../../../src/data/image/png.js';

const dir = mkdtempSync(join(tmpdir(), 'sumi-grid-'));
after(() => rmSync(dir, { recursive: true, force: true }));

void describe('image grids', () => {
  void test('lays out N images nrow per row with padding', () => {
    // 3 gray 2x2 images: -1 (black), 0 (mid gray), 1 (white); 2 per row, padding 1 of value -1.
    const values = [-1, 0, 1].flatMap((v) => new Array<number>(4).fill(v));
    const g = gridFromValues(values, [3, 1, 2, 2], { nrow: 2, padding: 1, padValue: -1 });
    assert.deepEqual([g.width, g.height, g.channels], [7, 7, 1]);
    const B = 0;
    const M = 128;
    const W = 255;
    const rows = [
      [B, B, B, B, B, B, B],
      [B, B, B, B, M, M, B],
      [B, B, B, B, M, M, B],
      [B, B, B, B, B, B, B],
      [B, W, W, B, B, B, B],
      [B, W, W, B, B, B, B],
      [B, B, B, B, B, B, B],
    ];
    assert.deepEqual([...g.data], rows.flat());
  });

  void test('from a tensor; RGB stays interleaved; default square-ish layout', async () => {
    const t = tensor(
      Float32Array.from({ length: 5 * 3 * 4 * 4 }, (_, i) => (i % 3) - 1),
      [5, 3, 4, 4],
    );
    const g = await imageGrid(t);
    assert.deepEqual([g.width, g.height, g.channels], [3 * 6 + 2, 2 * 6 + 2, 3]); // 3 per row
    assert.throws(() => gridFromValues([0], [1, 2, 1, 1]), /expected 1, 3 or 4 channels/);
    assert.throws(() => gridFromValues([0, 0], [1, 1, 1, 1]), /2 values do not fill/);
  });

  void test('tensorToImages maps [-1, 1] to 0..255 per image', async () => {
    const t = tensor([-1, 1, 0.5, 2, -3, 0], [2, 1, 1, 3]);
    const imgs = await tensorToImages(t);
    assert.equal(imgs.length, 2);
    assert.deepEqual([...imgs[0]!.data], [0, 255, 191]);
    assert.deepEqual([...imgs[1]!.data], [255, 0, 128]);
  });

  void test('scale draws each pixel as a block; padding stays in output pixels', () => {
    // Two 1×2 gray images, values −1 (0) and 1 (255), scale 3, padding 1.
    const g = gridFromValues([-1, 1, 1, -1], [2, 1, 1, 2], { nrow: 2, padding: 1, scale: 3 });
    assert.equal(g.width, 2 * (6 + 1) + 1);
    assert.equal(g.height, 3 + 2);
    const px = (x: number, y: number): number => g.data[y * g.width + x]!;
    for (let y = 1; y <= 3; y++) {
      assert.deepEqual(
        [1, 2, 3, 4, 5, 6].map((x) => px(x, y)),
        [0, 0, 0, 255, 255, 255],
      );
      assert.deepEqual(
        [8, 9, 10, 11, 12, 13].map((x) => px(x, y)),
        [255, 255, 255, 0, 0, 0],
      );
    }
    assert.equal(px(7, 2), 255, 'padding between the images');
    assert.throws(
      () => gridFromValues([0], [1, 1, 1, 1], { scale: 0 }),
      /scale must be an integer/,
    );
  });

  void test('savePng writes a grid that decodes back; saveGif writes an animation', async () => {
    const t = tensor(
      Float32Array.from({ length: 4 * 3 * 5 * 5 }, (_, i) => Math.sin(i)),
      [4, 3, 5, 5],
    );
    const path = join(dir, 'sub', 'grid.png');
    await savePng(path, t, { nrow: 4, padding: 0 });
    const back = decodePng(readFileSync(path), path);
    assert.deepEqual(back, await imageGrid(t, { nrow: 4, padding: 0 }));
    const gif = join(dir, 'anim.gif');
    await saveGif(gif, [t, t.neg()], { delayMs: 50 });
    const bytes = readFileSync(gif);
    assert.equal(bytes.subarray(0, 6).toString('latin1'), 'GIF89a');
    assert.equal(bytes[bytes.length - 1], 0x3b);
  });
});
