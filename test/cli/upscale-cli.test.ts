/**
 * `sumi train --task upscale` and `sumi edit upscale` on a tiny 8×8 model: training records the
 * factor and σ_a in sumi.json; `edit upscale` turns a 4×4 image into an 8×8 one; the other
 * commands refuse the upscaler, and `edit upscale` refuses a model that is not one. Bad inputs
 * (the image's size, --factor without --task upscale, guidance) are one line, exit 2, nothing
 * written.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { decodePng } from '../../src/data/index.js';
import { writeTinyModel } from '../../src/eval/test-models.js';
import {
  assertCleanError,
  assertInputError,
  cliFixture,
  grayPng,
  sumiInProcess as sumi,
  trainTiny,
} from './run-sumi.js';

const fx = cliFixture('sumi-upscale-');
const { file } = fx;

void describe('sumi train --task upscale, sumi edit upscale', () => {
  void test('trains an upscaler, which upscales 4x4 to 8x8 and nothing else takes', async () => {
    const model = file('sr');
    const t = await trainTiny(fx, model, [
      '--task',
      'upscale',
      '--factor',
      '2',
      '--noise-aug',
      '0.1',
    ]);
    assert.equal(t.code, 0, t.stderr);
    const info = JSON.parse(readFileSync(join(model, 'checkpoint', 'sumi.json'), 'utf8')) as {
      upscale?: unknown;
      imageSize: number;
    };
    assert.deepEqual(info.upscale, { factor: 2, noiseAugmentation: 0.1 });
    assert.equal(info.imageSize, 8);

    const small = await grayPng(file('small.png'), 4);
    const out = file('up.png');
    const r = await sumi([
      'edit',
      'upscale',
      '--model',
      model,
      '--image',
      small,
      '--steps',
      '3',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(4x4\) upscaled ×2 to 8x8, ddim 3 steps, σ_a 0\.1, seed 0/);
    const img = decodePng(readFileSync(out), out);
    assert.deepEqual([img.width, img.height, img.channels], [8, 8, 1]);

    const big = await grayPng(file('big.png'), 8);
    const bad = file('bad.png');
    assertInputError(
      await sumi(['edit', 'upscale', '--model', model, '--image', big, '--out', bad]),
      /big\.png: 8x8 pixels; the model takes 4x4 images/,
      bad,
    );
    assertCleanError(
      await sumi([
        'edit',
        'upscale',
        '--model',
        model,
        '--image',
        small,
        '--guidance',
        '2',
        '--out',
        bad,
      ]),
      2,
      /unknown option '--guidance'/,
    );
    assert.equal(existsSync(bad), false, 'nothing written');
    const s = await sumi(['sample', '--model', model, '--n', '1', '--out', bad]);
    assert.notEqual(s.code, 0, 'sumi sample refuses an upscaler');
    assert.match(s.stderr, /an SR3 upscaler \(×2, sumi\.json "upscale"\).*'sumi edit upscale'/);
    assert.equal(existsSync(bad), false, 'nothing written');
  });

  void test('edit upscale refuses a model that is not an upscaler; --factor needs --task upscale', async () => {
    const plain = await writeTinyModel(file('plain'), { classes: null });
    const small = await grayPng(file('small2.png'), 4);
    const out = file('never.png');
    const r = await sumi(['edit', 'upscale', '--model', plain, '--image', small, '--out', out]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /not an upscaler \(no "upscale" in sumi\.json\); train one with 'sumi train --task upscale'/,
    );
    assert.equal(existsSync(out), false);
    const t = await sumi([
      'train',
      '--data',
      'mnist',
      '--config',
      fx.config,
      '--factor',
      '4',
      '--out',
      file('never'),
    ]);
    assertCleanError(t, 2, /--factor is a setting of --task upscale/);
    const u = await sumi([
      'train',
      '--data',
      'mnist',
      '--config',
      fx.config,
      '--task',
      'upscale',
      '--noise-aug',
      '1',
      '--out',
      file('never'),
    ]);
    assertCleanError(u, 2, /--noise-aug must be in \[0, 1\), got 1/);
    assert.equal(existsSync(file('never')), false);
  });
});
