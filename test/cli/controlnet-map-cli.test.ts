/**
 * `sumi controlnet map --control KIND IN OUT.png`: the map it writes is, pixel for pixel, the
 * condition image a ControlNet training run computes from IN (a folder dataset holding IN, batched
 * by the data loader, controlImages of the batch), for every kind, for gray, RGB, RGBA, 16-bit
 * and JPEG input, with --channels and --image-size; bad input is exit 2 with nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { encode as encodeJpeg } from 'jpeg-js';

import {
  DataLoader,
  decodePng,
  encodePng,
  loadDataset,
  loadMnist,
  type RawImage,
} from '../../src/data/index.js';
import { CONTROL_KINDS, type ControlKind, controlImages } from '../../src/diffusion/index.js';
import {
  assertCleanError,
  assertInputError,
  cliFixture,
  sumiInProcess as sumi,
} from './run-sumi.js';

const fx = cliFixture('sumi-controlnet-map-');

/** A w×h image of `channels` samples whose values follow f(x, y, k) in [0, 1]. */
function pattern(
  w: number,
  h: number,
  channels: 1 | 2 | 3 | 4,
  f: (x: number, y: number, k: number) => number,
  depth: 8 | 16 = 8,
): RawImage {
  const max = depth === 16 ? 65535 : 255;
  const data = depth === 16 ? new Uint16Array(w * h * channels) : new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < channels; k++) {
        data[(y * w + x) * channels + k] = Math.round(max * Math.min(1, Math.max(0, f(x, y, k))));
      }
    }
  }
  return { width: w, height: h, channels, data };
}

/** A blob of colour k-dependent on a dark ground, with a ramp: edges, a mask and soft parts. */
const blob = (x: number, y: number, k: number): number => {
  const r = Math.hypot(x - 13 - k, y - 12 + k);
  return r < 7 ? 0.9 - 0.2 * k : r < 9 ? (9 - r) / 2 : 0.05 * k + x / 200;
};

/** The folder `name` holding only `file` with `bytes` (a dataset of one image). */
function imageFolder(name: string, file: string, bytes: Uint8Array): string {
  const dir = fx.file(name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, file), bytes);
  return join(dir, file);
}

/** What a training run computes: the folder as its dataset, its loader's batch, controlImages. */
async function trainingMap(
  path: string,
  kind: ControlKind,
  opts: { size: number; channels: 1 | 3 },
): Promise<Uint8Array> {
  const ds = loadDataset(join(path, '..'), opts);
  const batch = new DataLoader(ds, { batchSize: 1, shuffle: false }).batchAt(0);
  const maps = await controlImages(kind, batch.x);
  const values = await maps.data();
  batch.x.dispose();
  maps.dispose();
  return Uint8Array.from(values, (v) => 255 * v);
}

interface Case {
  name: string;
  file: string;
  bytes: Uint8Array;
  /** The options given to the command. */
  options: string[];
  /** The run the map should match. */
  run: { size: number; channels: 1 | 3 };
}

const digit = loadMnist().get(7).image;
const CASES: Case[] = [
  {
    name: 'gray digit',
    file: 'digit.png',
    bytes: encodePng(pattern(28, 28, 1, (x, y) => digit[y * 28 + x]!)),
    options: [],
    run: { size: 28, channels: 1 },
  },
  {
    name: 'RGB',
    file: 'rgb.png',
    bytes: encodePng(pattern(28, 28, 3, blob)),
    options: [],
    run: { size: 28, channels: 3 },
  },
  {
    name: 'RGB for a gray model',
    file: 'rgb.png',
    bytes: encodePng(pattern(28, 28, 3, blob)),
    options: ['--channels', '1'],
    run: { size: 28, channels: 1 },
  },
  {
    name: 'RGBA over white',
    file: 'rgba.png',
    bytes: encodePng(pattern(24, 24, 4, (x, y, k) => (k === 3 ? blob(x, y, 0) : blob(x, y, k)))),
    options: [],
    run: { size: 24, channels: 3 },
  },
  {
    name: '16-bit gray, resized',
    file: 'deep.png',
    bytes: encodePng(pattern(40, 32, 1, blob, 16)),
    options: ['--image-size', '28'],
    run: { size: 28, channels: 1 },
  },
  {
    name: 'JPEG, resized',
    file: 'photo.jpg',
    bytes: encodeJpeg(
      {
        width: 20,
        height: 20,
        data: pattern(20, 20, 4, (x, y, k) => (k === 3 ? 1 : blob(x, y, k))).data,
      },
      90,
    ).data,
    options: ['--image-size', '28', '--channels', '3'],
    run: { size: 28, channels: 3 },
  },
];

void describe('sumi controlnet map', () => {
  for (const c of CASES) {
    void test(`${c.name}: the map a training run computes, for ${CONTROL_KINDS.join(', ')}`, async () => {
      const input = imageFolder(c.name.replace(/\W+/g, '-'), c.file, c.bytes);
      for (const kind of CONTROL_KINDS) {
        const out = fx.file(`${c.name.replace(/\W+/g, '-')}-${kind}.png`);
        const r = await sumi(['controlnet', 'map', '--control', kind, ...c.options, input, out]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`the ${kind} condition image of .*, ${c.run.size}x`));
        const map = decodePng(readFileSync(out), out);
        assert.deepEqual(
          [map.width, map.height, map.channels],
          [c.run.size, c.run.size, 1],
          `${kind}: one channel at the run's size`,
        );
        const want = await trainingMap(input, kind, c.run);
        assert.deepEqual(map.data, want, `${c.name}, ${kind}: the training run's map`);
        const on = want.filter((v) => v === 255).length;
        assert.ok(on > 0 && on < want.length, `${c.name}, ${kind}: a map with something on it`);
      }
    });
  }

  void test('--help, and the kind by default: edges', async () => {
    const help = await sumi(['controlnet', 'map', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^usage: sumi controlnet map .*IN OUT\.png/);
    assert.match(help.stdout, /--control KIND/);
    const input = imageFolder('default', 'digit.png', CASES[0]!.bytes);
    const out = fx.file('default.png');
    const r = await sumi(['controlnet', 'map', input, out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      decodePng(readFileSync(out), out).data,
      await trainingMap(input, 'edges', CASES[0]!.run),
    );
  });

  void test('bad input: exit 2, one clear message, nothing written', async () => {
    const good = imageFolder('good', 'digit.png', CASES[0]!.bytes);
    const broken = imageFolder('broken', 'broken.png', new TextEncoder().encode('not a png'));
    const out = fx.file('never.png');
    const usage = async (args: string[], message: RegExp): Promise<void> => {
      const r = await sumi(['controlnet', 'map', ...args]);
      assertCleanError(r, 2, message);
      assert.match(r.stderr, /^sumi controlnet map: /);
      assert.equal(existsSync(out), false, `${out} is not written (${args.join(' ')})`);
    };
    await usage(
      ['--control', 'depth', good, out],
      /--control: 'depth' is not one of edges, canny, mask/,
    );
    await usage(['--channels', '2', good, out], /--channels must be 1 or 3, got 2/);
    await usage(['--image-size', '0', good, out], /--image-size must be at least 1, got 0/);
    await usage([good], /missing OUT\.png/);
    await usage([], /missing IN/);
    await usage([good, out, 'extra.png'], /unexpected argument 'extra\.png'/);
    await usage([good, fx.file('never.jpg')], /OUT must name a \.png file/);
    assert.equal(existsSync(fx.file('never.jpg')), false);

    const input = async (args: string[], message: RegExp): Promise<void> => {
      assertInputError(await sumi(['controlnet', 'map', ...args]), message, out);
    };
    await input([fx.file('missing.png'), out], /missing\.png: no such file/);
    await input([broken, out], /broken\.png/);
    await input([fx.file('good'), out], /good is a folder, not an image/);

    const dir = fx.file('out-folder.png');
    mkdirSync(dir);
    const r = await sumi(['controlnet', 'map', good, dir]);
    assertCleanError(r, 2, /out-folder\.png is a folder; OUT\.png must name a file/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(statSync(dir).isDirectory(), 'the folder is still there');
    assert.deepEqual(readdirSync(dir), [], 'the folder is left as it was');
  });
});
