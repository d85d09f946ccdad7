/**
 * `sumi edit` on tiny random models: img2img at strength 0 is the input, at strength 1 the image
 * `sumi sample` draws for the seed; inpainting keeps the black region of the mask pixel for pixel;
 * invert writes x_T and reconstructs, and `reconstruct` gives the same picture from the file.
 * Every bad input (image size or channels, mask size, channels or values, strength, sampler,
 * files) is one line, exit 2, and writes nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { decodePng, encodePng, type RawImage } from '../../src/data/index.js';
import { writeTinyModel } from '../../src/eval/test-models.js';
import { writeSafetensors } from '../../src/nn/index.js';
import {
  assertCleanError,
  assertInputError,
  type Result,
  sumiInProcess as sumi,
} from './run-sumi.js';

let dir = '';
let uncond = '';
let cond = '';
const file = (name: string): string => join(dir, name);

function gray(w: number, h: number, fill: (i: number) => number, channels = 1): RawImage {
  return {
    width: w,
    height: h,
    channels: channels as 1 | 3,
    data: Uint8Array.from({ length: w * h * channels }, (_, i) => fill(i)),
  };
}

async function png(name: string, img: RawImage): Promise<string> {
  await writeFile(file(name), encodePng(img));
  return file(name);
}

function pixels(path: string): Uint8Array {
  return decodePng(readFileSync(path), path).data as Uint8Array;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-edit-'));
  uncond = await writeTinyModel(file('uncond'), { classes: null });
  cond = await writeTinyModel(file('cond'));
  await png(
    'in.png',
    gray(8, 8, (i) => (i * 37) % 256),
  );
  await png(
    'mask.png',
    gray(8, 8, (i) => (i >= 32 ? 255 : 0)),
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('sumi edit', () => {
  void test('img2img at strength 0 writes the image itself', async () => {
    const out = file('i2i-0.png');
    const r = await sumi([
      'edit',
      'img2img',
      '--model',
      uncond,
      '--image',
      file('in.png'),
      '--strength',
      '0',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /at strength 0: the image itself \(no step runs\)/);
    assert.deepEqual(pixels(out), pixels(file('in.png')));
  });

  void test('img2img at strength 1 is the image sumi sample draws for the seed', async () => {
    const out = file('i2i-1.png');
    const r = await sumi([
      'edit',
      'img2img',
      '--model',
      uncond,
      '--image',
      file('in.png'),
      '--strength',
      '1',
      '--sampler',
      'euler-a',
      '--steps',
      '4',
      '--seed',
      '3',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /strength 1: 4 of 4 euler-a steps/);
    const grid = file('grid.png');
    const s = await sumi([
      'sample',
      '--model',
      uncond,
      '--n',
      '1',
      '--sampler',
      'euler-a',
      '--steps',
      '4',
      '--seed',
      '3',
      '--out',
      grid,
      '--quiet',
    ]);
    assert.equal(s.code, 0, s.stderr);
    // The grid pads the image with 2 pixels.
    const g = decodePng(readFileSync(grid), grid);
    const inner = Uint8Array.from(
      { length: 64 },
      (_, i) => g.data[(2 + Math.floor(i / 8)) * g.width + 2 + (i % 8)]!,
    );
    assert.deepEqual(pixels(out), inner);
    const half = file('i2i-half.png');
    const h = await sumi([
      'edit',
      'img2img',
      '--model',
      cond,
      '--class',
      '3',
      '--guidance',
      '2',
      '--image',
      file('in.png'),
      '--strength',
      '0.5',
      '--steps',
      '4',
      '--out',
      half,
    ]);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /2 of 4 ddim steps from t = 25/);
  });

  void test('inpaint keeps the black region of the mask pixel for pixel', async () => {
    const runs = [
      [],
      ['--sampler', 'ddpm', '--jumps', '2', '--resample', '3'],
      ['--known-noise', 'fixed'],
    ];
    for (const extra of runs) {
      const out = file(`inpainted-${extra.length}.png`);
      const r = await sumi([
        'edit',
        'inpaint',
        '--model',
        uncond,
        '--image',
        file('in.png'),
        '--mask',
        file('mask.png'),
        '--steps',
        '5',
        '--out',
        out,
        ...extra,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /32 of 64 pixels/);
      if (extra.includes('fixed')) assert.match(r.stdout, /kept region noised with x_T's ε/);
      const input = pixels(file('in.png'));
      const result = pixels(out);
      assert.deepEqual(result.subarray(0, 32), input.subarray(0, 32));
      assert.notDeepEqual(result.subarray(32), input.subarray(32));
    }
    // x_T's ε for the kept region (diffusers') instead of a fresh draw each step (RePaint's): the
    // model sees other inputs, so the repainted half differs from the first run's.
    assert.notDeepEqual(
      pixels(file('inpainted-2.png')).subarray(32),
      pixels(file('inpainted-0.png')).subarray(32),
    );
  });

  void test('invert writes x_T and its reconstruction; reconstruct samples the same from the file', async () => {
    const noise = file('noise.safetensors');
    const rec = file('rec.png');
    const r = await sumi([
      'edit',
      'invert',
      '--model',
      cond,
      '--class',
      '2',
      '--image',
      file('in.png'),
      '--steps',
      '10',
      '--out',
      noise,
      '--reconstruct',
      rec,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /x_T at t = 90 of 10 DDIM steps .* RMSE \d\.\d+, PSNR/);
    const again = file('rec2.png');
    const b = await sumi([
      'edit',
      'reconstruct',
      '--model',
      cond,
      '--noise',
      noise,
      '--out',
      again,
    ]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /10 DDIM steps from .* under 2/);
    assert.deepEqual(readFileSync(again), readFileSync(rec));
    const other = file('rec-class5.png');
    const c = await sumi([
      'edit',
      'reconstruct',
      '--model',
      cond,
      '--noise',
      noise,
      '--class',
      '5',
      '--out',
      other,
    ]);
    assert.equal(c.code, 0, c.stderr);
    assert.notDeepEqual(readFileSync(other), readFileSync(rec));
  });

  void test('bad images, masks, strengths and samplers: one line, exit 2, nothing written', async () => {
    const out = file('never.png');
    const big = await png(
      'big.png',
      gray(16, 16, () => 0),
    );
    const rgb = await png(
      'rgb.png',
      gray(8, 8, () => 0, 3),
    );
    const img2img = (...extra: string[]): Promise<Result> =>
      sumi(['edit', 'img2img', '--model', uncond, '--out', out, ...extra]);
    assertInputError(
      await img2img('--image', big),
      /big\.png: 16x16 pixels; the model takes 8x8 images/,
      out,
    );
    assertInputError(
      await img2img('--image', rgb),
      /rgb\.png: a RGB image; the model takes gray \(1-channel\) images/,
      out,
    );
    assertInputError(
      await img2img('--image', file('missing.png')),
      /missing\.png: cannot read/,
      out,
    );
    for (const s of ['1.5', '-1']) {
      assertInputError(
        await img2img('--image', file('in.png'), '--strength', s),
        /strength must be in \[0, 1\]/,
        out,
      );
    }
    assertInputError(
      await img2img('--image', file('in.png'), '--strength', '0.1', '--steps', '5'),
      /strength 0\.1 with 5 steps runs no step/,
      out,
    );
    const usage0 = await img2img('--image', file('in.png'), '--class', '3');
    assertCleanError(usage0, 2, /--class 3: the model is unconditional; it takes no class/);
    assert.equal(existsSync(out), false);

    const inpaint = (...extra: string[]): Promise<Result> =>
      sumi([
        'edit',
        'inpaint',
        '--model',
        uncond,
        '--image',
        file('in.png'),
        '--out',
        out,
        ...extra,
      ]);
    const grayMask = await png(
      'gray-mask.png',
      gray(8, 8, (i) => (i === 9 ? 128 : 0)),
    );
    assertInputError(
      await inpaint('--mask', grayMask),
      /gray-mask\.png: 1 of 64 pixels are neither black nor white \(the first at x=1, y=1: 128 of 255\)/,
      out,
    );
    assertInputError(
      await inpaint('--mask', big),
      /big\.png: 16x16 pixels; the image is 8x8, and the mask must match it/,
      out,
    );
    assertInputError(
      await inpaint('--mask', rgb),
      /rgb\.png: a RGB image; a mask is single-channel/,
      out,
    );
    assertInputError(
      await inpaint('--mask', file('mask.png'), '--sampler', 'euler', '--resample', '2'),
      /RePaint resampling .* ddpm or ddim, not EulerDiscreteScheduler/,
      out,
    );
    assertInputError(
      await inpaint('--mask', file('mask.png'), '--steps', '5', '--jumps', '5', '--resample', '2'),
      /the jump length must be an integer from 1 to steps − 1 = 4, got 5/,
      out,
    );
    const usage = await inpaint('--mask', file('mask.png'), '--jumps', '3');
    assertCleanError(usage, 2, /--jumps sets RePaint resampling: give --resample R/);
    assert.equal(existsSync(out), false);

    const noise = file('never.safetensors');
    const invert = (...extra: string[]): Promise<Result> =>
      sumi(['edit', 'invert', '--model', uncond, '--image', file('in.png'), ...extra]);
    assertInputError(
      await invert('--out', noise, '--sampler', 'euler'),
      /--sampler euler: only ddim is invertible \(DDIM with η = 0/,
      noise,
    );
    assertInputError(await invert('--out', noise, '--image', big), /big\.png: 16x16 pixels/, noise);
    assertCleanError(await invert('--out', out), 2, /--out must name a \.safetensors file/);

    const foreign = file('foreign.safetensors');
    await writeSafetensors(foreign, [
      { name: 'noise', shape: [1, 1, 8, 8], data: new Float32Array(64) },
    ]);
    const reconstruct = (path: string): Promise<Result> =>
      sumi(['edit', 'reconstruct', '--model', uncond, '--noise', path, '--out', out]);
    assertInputError(
      await reconstruct(foreign),
      /foreign\.safetensors: not a 'sumi edit invert' noise file/,
      out,
    );
    const wrong = file('wrong-shape.safetensors');
    await writeSafetensors(
      wrong,
      [{ name: 'noise', shape: [1, 1, 4, 4], data: new Float32Array(16) }],
      { format: 'sumi-ddim-inversion', steps: '10', condition: 'null', guidance: '1' },
    );
    assertInputError(
      await reconstruct(wrong),
      /wrong-shape\.safetensors: noise of shape \[1, 1, 4, 4\]; the model takes \[1, 1, 8, 8\]/,
      out,
    );
    const sub = await sumi(['edit', 'outpaint']);
    assert.equal(sub.code, 2);
    assert.match(sub.stderr, /unknown subcommand 'outpaint'/);
  });
});
