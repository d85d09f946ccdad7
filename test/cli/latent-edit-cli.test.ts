/**
 * `sumi edit` on a latent model (a tiny random AutoencoderKL and U-Net pipeline folder):
 * img2img at strength 1 is the image `sumi sample` decodes for the seed; inversion writes latent
 * noise and reconstructs, printing the vae's own error beside the inversion's, and `reconstruct`
 * decodes the file; inpainting keeps the known pixels exactly (unless --no-paste-known); a
 * class-conditional latent model takes --class. An image or mask of another size than the vae's
 * images, an inpainting-trained latent model, and the latent-only options on a pixel model are
 * each one line, exit 2, with nothing written.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';

import { decodePng } from '../../src/data/index.js';
import { writeTinyModel } from '../../src/eval/test-models.js';
import { readSafetensors } from '../../src/nn/index.js';
import { writeLatentPipeline } from '../diffusion/latent-editing-setup.js';
import {
  assertInputError,
  cliFixture,
  grayPng,
  type Result,
  sumiInProcess as sumi,
} from './run-sumi.js';

const fx = cliFixture('sumi-latent-edit-');
const file = (name: string): string => fx.file(name);
let ldm = '';

function pixels(path: string): Uint8Array {
  return decodePng(readFileSync(path), path).data as Uint8Array;
}

before(async () => {
  ldm = await writeLatentPipeline(file('ldm'));
  await grayPng(file('in.png'), 8);
  await grayPng(file('big.png'), 12);
  // Rows 3–7 repainted (255), rows 0–2 kept.
  await grayPng(
    file('mask.png'),
    8,
    Uint8Array.from({ length: 64 }, (_, i) => (i >= 24 ? 255 : 0)),
  );
  await grayPng(file('mask4.png'), 4, new Uint8Array(16).fill(255));
});

void describe('sumi edit on a latent model', () => {
  void test('img2img at strength 1 is the image sumi sample decodes for the seed', async () => {
    const out = file('i2i-1.png');
    const common = ['--model', ldm, '--sampler', 'dpmpp-2m', '--steps', '4', '--seed', '3'];
    const r = await sumi([
      'edit',
      'img2img',
      ...common,
      '--image',
      file('in.png'),
      '--strength',
      '1',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /through its AutoencoderKL \(posterior sample\)/);
    const grid = file('grid.png');
    const s = await sumi(['sample', ...common, '--n', '1', '--out', grid, '--quiet']);
    assert.equal(s.code, 0, s.stderr);
    // The grid pads the image with 2 pixels.
    const g = decodePng(readFileSync(grid), grid);
    const inner = Uint8Array.from(
      { length: 64 },
      (_, i) => g.data[(2 + Math.floor(i / 8)) * g.width + 2 + (i % 8)]!,
    );
    assert.deepEqual(pixels(out), inner);
    const half = await sumi([
      'edit',
      'img2img',
      ...common,
      '--image',
      file('in.png'),
      '--strength',
      '0.5',
      '--posterior',
      'mean',
      '--out',
      file('i2i-half.png'),
    ]);
    assert.equal(half.code, 0, half.stderr);
    assert.match(half.stdout, /2 of 4 dpmpp-2m steps.*\(posterior mean\)/);
    assert.equal(decodePng(readFileSync(file('i2i-half.png'))).width, 8);
  });

  void test('invert writes latent noise and reconstructs, with the error of the vae alone', async () => {
    const noise = file('x.safetensors');
    const r = await sumi([
      'edit',
      'invert',
      '--model',
      ldm,
      '--image',
      file('in.png'),
      '--steps',
      '6',
      '--fixed-point',
      '2',
      '--out',
      noise,
      '--reconstruct',
      file('back.png'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = /PSNR ([\d.]+) dB \(the vae alone: RMSE [\d.]+, PSNR ([\d.]+) dB\)/.exec(r.stdout);
    assert.ok(m !== null, r.stdout);
    const [inverted, vaeOnly] = [Number(m[1]), Number(m[2])];
    assert.ok(inverted <= vaeOnly + 0.5, `inversion ${inverted} dB, vae ${vaeOnly} dB`);
    const f = await readSafetensors(noise);
    assert.deepEqual(f.tensors.get('noise')!.shape, [1, 2, 4, 4]);
    assert.equal(f.metadata.latent, 'AutoencoderKL');
    const again = file('again.png');
    const rec = await sumi([
      'edit',
      'reconstruct',
      '--model',
      ldm,
      '--noise',
      noise,
      '--out',
      again,
    ]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stdout, /decoded by its AutoencoderKL/);
    assert.deepEqual(pixels(again), pixels(file('back.png')));
  });

  void test('inpaint keeps the known pixels exactly, or leaves them decoded with --no-paste-known', async () => {
    const args = [
      'edit',
      'inpaint',
      '--model',
      ldm,
      '--image',
      file('in.png'),
      '--mask',
      file('mask.png'),
    ];
    const out = file('inp.png');
    const r = await sumi([...args, '--steps', '4', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /12 of 16 latent cells repainted \(any pixel of their 2x2 block\), kept pixels pasted back/,
    );
    const input = pixels(file('in.png'));
    const got = pixels(out);
    assert.deepEqual(got.subarray(0, 24), input.subarray(0, 24));
    const raw = file('inp-raw.png');
    const n = await sumi([...args, '--steps', '4', '--no-paste-known', '--out', raw]);
    assert.equal(n.code, 0, n.stderr);
    assert.deepEqual(
      pixels(raw).subarray(24),
      got.subarray(24),
      'the repainted pixels are the same',
    );
    assert.notDeepEqual(
      pixels(raw).subarray(0, 24),
      input.subarray(0, 24),
      'the vae changes the rest',
    );
  });

  void test('a class-conditional latent model takes --class', async () => {
    const dir = await writeLatentPipeline(file('ldm-class'), { classes: 3 });
    const r = await sumi([
      'edit',
      'img2img',
      '--model',
      dir,
      '--image',
      file('in.png'),
      '--class',
      '2',
      '--guidance',
      '2',
      '--steps',
      '4',
      '--out',
      file('i2i-class.png'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(pixels(file('i2i-class.png')).length === 64, 'an 8x8 gray image');
  });

  void test('bad input is one line, exit 2, nothing written', async () => {
    const out = file('bad.png');
    /** `sumi edit <command>` of `model` on `image`, written to `out`. */
    const edit = (
      command: string,
      model: string,
      extra: string[] = [],
      image = file('in.png'),
    ): Promise<Result> =>
      sumi(['edit', command, '--model', model, '--image', image, ...extra, '--out', out]);
    const mask = ['--mask', file('mask.png')];
    assertInputError(
      await edit('img2img', ldm, ['--steps', '2'], file('big.png')),
      /big\.png: 12x12 pixels; the model takes 8x8 images/,
      out,
    );
    assertInputError(
      await edit('inpaint', ldm, ['--mask', file('mask4.png')]),
      /mask4\.png: 4x4 pixels; the image is 8x8, and the mask must match it/,
      out,
    );
    const trained = await writeLatentPipeline(file('ldm-inpaint'), { inpaint: true });
    assertInputError(
      await edit('inpaint', trained, mask),
      /an inpainting-trained latent model .* is not supported/,
      out,
    );
    const pixel = await writeTinyModel(file('pixel'), { classes: null });
    assertInputError(
      await edit('img2img', pixel, ['--posterior', 'mean']),
      /--posterior: .* is a pixel model; it is for a latent model with an AutoencoderKL/,
      out,
    );
    assertInputError(
      await edit('inpaint', pixel, [...mask, '--no-paste-known']),
      /--paste-known is for latent models/,
      out,
    );
    assertInputError(await edit('upscale', ldm), /not an upscaler/, out);
  });
});
