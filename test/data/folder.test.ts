import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { encode as encodeJpeg } from 'jpeg-js';

import { findImages, loadImageFolder } from '../../src/data/folder.js';
import type { RawImage } from '../../src/data/image/image.js';
import { encodePng } from '../../src/data/image/png.js';
import { loadDataset } from '../../src/data/load.js';

const root = mkdtempSync(join(tmpdir(), 'sumi-folder-'));
after(() => rmSync(root, { recursive: true, force: true }));

function solid(w: number, h: number, rgba: number[]): RawImage {
  const data = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) data.set(rgba, 4 * p);
  return { width: w, height: h, channels: 4, data };
}

function write(path: string, bytes: Uint8Array): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, bytes);
  return path;
}

// classes/cats: a red RGBA PNG (20x10) and a half-transparent blue one; classes/dogs: a gray
// 16-bit PNG in a nested folder and a green JPEG; plus files that must be ignored.
const labelled = join(root, 'classes');
write(join(labelled, 'cats', 'a.png'), encodePng(solid(20, 10, [255, 0, 0, 255])));
write(join(labelled, 'cats', 'b.PNG'), encodePng(solid(8, 8, [0, 0, 255, 0])));
write(
  join(labelled, 'dogs', 'deep', 'c.png'),
  encodePng({ width: 3, height: 5, channels: 1, data: new Uint16Array(15).fill(65535) }),
);
const jpeg = encodeJpeg({ width: 16, height: 16, data: solid(16, 16, [0, 200, 0, 255]).data }, 95);
write(join(labelled, 'dogs', 'd.jpg'), jpeg.data);
write(join(labelled, 'dogs', 'notes.txt'), Buffer.from('not an image'));
write(join(labelled, '.hidden', 'e.png'), encodePng(solid(2, 2, [0, 0, 0, 255])));

void describe('image folders', () => {
  void test('finds images recursively, sorted, skipping other and hidden files', () => {
    const rel = findImages(labelled).map((p) => p.slice(labelled.length + 1));
    assert.deepEqual(rel, ['cats/a.png', 'cats/b.PNG', 'dogs/d.jpg', 'dogs/deep/c.png']);
  });

  void test('labels from top-level subfolders; resize, crop, composite, JPEG', () => {
    const ds = loadImageFolder(labelled, { size: 4 });
    assert.deepEqual([ds.length, ds.channels, ds.height, ds.width], [4, 3, 4, 4]);
    assert.deepEqual(ds.classNames, ['cats', 'dogs']);
    assert.equal(ds.numClasses, 2);
    const pixel = (i: number): number[] => {
      const img = ds.get(i).image;
      assert.equal(img.length, 48);
      assert.ok(
        img.every((v) => v >= 0 && v <= 1),
        `image ${i}: values in [0, 1]`,
      );
      return [img[5]!, img[16 + 5]!, img[32 + 5]!];
    };
    assert.deepEqual(pixel(0), [1, 0, 0]); // red, 20x10 scaled to 8x4 then cropped
    assert.deepEqual(pixel(1), [1, 1, 1]); // transparent blue over white
    const green = pixel(2); // JPEG is lossy
    assert.ok(
      Math.abs(green[0]!) < 0.03 && Math.abs(green[1]! - 200 / 255) < 0.03 && green[2]! < 0.03,
      `green pixel ${green.join(', ')}`,
    );
    assert.deepEqual(pixel(3), [1, 1, 1]); // 16-bit gray white, 3x5 enlarged to 4x(6.67) and cropped
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => ds.get(i).label),
      [0, 0, 1, 1],
    );
    assert.equal(ds.get(2).name, join('dogs', 'd.jpg'));
    // Cached: the same values on every get.
    assert.deepEqual(ds.get(2).image, ds.get(2).image);
  });

  void test('gray output and other backgrounds', () => {
    const ds = loadImageFolder(labelled, { size: [2, 3], channels: 1, background: [0, 0, 0] });
    assert.deepEqual([ds.channels, ds.height, ds.width], [1, 2, 3]);
    assert.deepEqual([...ds.get(1).image], [0, 0, 0, 0, 0, 0]); // transparent over black
    assert.ok(Math.abs(ds.get(0).image[0]! - 0.298) < 0.003, `red's luma ${ds.get(0).image[0]}`); // red's luma
  });

  void test('no labels when images sit in the root', () => {
    const flat = join(root, 'flat');
    write(join(flat, 'x.png'), encodePng(solid(2, 2, [1, 2, 3, 255])));
    write(join(flat, 'sub', 'y.png'), encodePng(solid(2, 2, [1, 2, 3, 255])));
    const ds = loadDataset(flat, { size: 2 });
    assert.equal(ds.numClasses, undefined);
    assert.equal(ds.get(1).label, undefined);
    assert.equal(ds.name, flat);
  });

  void test('clear errors: missing folder, empty folder, unreadable image', () => {
    assert.throws(
      () => loadImageFolder(join(root, 'nope')),
      /dataset folder '.*nope' does not exist/,
    );
    assert.throws(
      () => loadDataset('./no/such/folder'),
      /dataset folder '.\/no\/such\/folder' does not exist/,
    );
    mkdirSync(join(root, 'empty', 'sub'), { recursive: true });
    assert.throws(
      () => loadImageFolder(join(root, 'empty')),
      /'.*empty' has no PNG or JPEG images/,
    );
    const broken = join(root, 'broken');
    const bad = write(
      join(broken, 'bad.png'),
      encodePng(solid(4, 4, [0, 0, 0, 255])).subarray(0, 45),
    );
    const fake = write(join(broken, 'fake.jpg'), Buffer.from('hello'));
    const ds = loadImageFolder(broken, { size: 4 });
    assert.throws(
      () => ds.get(0),
      (e: Error) => e.message.startsWith(`${bad}: truncated chunk 'IDAT'`),
    );
    assert.throws(
      () => ds.get(1),
      (e: Error) => e.message === `${fake}: not a PNG or JPEG file (unrecognized signature)`,
    );
    assert.throws(() => ds.preload(), /bad\.png/);
  });
});
