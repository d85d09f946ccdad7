/**
 * `sumi train --task inpaint` and `sumi edit inpaint` with the trained model, on a tiny 8×8
 * model: training records the masks in sumi.json and gives the U-Net 2C + 1 input channels;
 * `edit inpaint` repaints the white region and keeps the rest; every command that would run the
 * model without a mask refuses it (one line, exit 2, nothing written), and so do the mask-blending
 * options; `sumi export` writes it with its sumi.json.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { decodePng } from '../../src/data/index.js';
import {
  assertCleanError,
  assertInputError,
  cliFixture,
  grayPng,
  sumiInProcess as sumi,
  trainTiny,
} from './run-sumi.js';

const fx = cliFixture('sumi-inpaint-');
const { file } = fx;

void describe('sumi train --task inpaint, sumi edit inpaint', () => {
  void test('trains an inpainting model, which repaints the masked half and nothing else runs', async () => {
    const model = file('inpaint');
    const t = await trainTiny(fx, model, ['--task', 'inpaint']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /inpaint with it: sumi edit inpaint --model/);
    const ckpt = join(model, 'checkpoint');
    const info = JSON.parse(readFileSync(join(ckpt, 'sumi.json'), 'utf8')) as {
      inpaint?: unknown;
    };
    assert.deepEqual(info.inpaint, { masks: ['rectangle', 'brush'] });
    const config = JSON.parse(readFileSync(join(ckpt, 'unet', 'config.json'), 'utf8')) as {
      in_channels: number;
      out_channels: number;
    };
    assert.deepEqual([config.in_channels, config.out_channels], [3, 1]);

    const pixels = Uint8Array.from({ length: 64 }, (_, i) => (i * 53) % 256);
    const image = await grayPng(file('in.png'), 8, pixels);
    const mask = await grayPng(
      file('mask.png'),
      8,
      Uint8Array.from({ length: 64 }, (_, i) => (i >= 32 ? 255 : 0)),
    );
    const out = file('out.png');
    const r = await sumi(
      [
        'edit',
        'inpaint',
        '--model',
        model,
        '--image',
        image,
        '--mask',
        mask,
        '--steps',
        '3',
      ].concat(['--out', out]),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /repainted where .*mask\.png is white \(32 of 64 pixels\), ddim 3 steps, inpainting model/,
    );
    const img = decodePng(readFileSync(out), out);
    assert.deepEqual([img.width, img.height, img.channels], [8, 8, 1]);
    assert.deepEqual(
      img.data.subarray(0, 32),
      pixels.subarray(0, 32),
      'the kept half is the input',
    );

    const bad = file('bad.png');
    assertInputError(
      await sumi(['sample', '--model', model, '--n', '1', '--out', bad]),
      /an inpainting model \(sumi\.json "inpaint"\): it needs an image and a mask; use 'sumi edit inpaint --image IMG --mask MASK'/,
      bad,
    );
    assertInputError(
      await sumi(['edit', 'img2img', '--model', model, '--image', image, '--out', bad]),
      /an inpainting model \(sumi\.json "inpaint"\)/,
      bad,
    );
    assertCleanError(
      await sumi(['edit', 'inpaint', '--model', model, '--image', image, '--out', bad]),
      2,
      /--mask FILE is required/,
    );
    assertCleanError(
      await sumi(
        ['edit', 'inpaint', '--model', model, '--image', image, '--mask', mask].concat([
          '--resample',
          '2',
          '--jumps',
          '1',
          '--sampler',
          'ddpm',
          '--steps',
          '3',
          '--out',
          bad,
        ]),
      ),
      2,
      /--jumps is a setting of mask blending; .* is an inpainting model, which sees the mask itself/,
    );

    const exported = file('exported');
    const e = await sumi(['export', '--model', model, '--out', exported]);
    assert.equal(e.code, 0, e.stderr);
    const again = JSON.parse(readFileSync(join(exported, 'sumi.json'), 'utf8')) as {
      inpaint?: unknown;
    };
    assert.deepEqual(again.inpaint, info.inpaint, 'export keeps the inpainting settings');
    assert.equal(existsSync(bad), false, 'nothing written');
  });
});
