/**
 * ControlNet on the command line, on a tiny random model: `sumi sample --controlnet DIR
 * --control-image FILE` changes the samples and `--control-scale 0` gives the plain model's; a
 * condition image of the wrong size, a ControlNet made for another model and options without
 * their partner are one line with exit 2.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { decodePng, encodePng } from '../../src/data/index.js';
import { loadPipeline } from '../../src/diffusion/index.js';
import { Generator, randn } from '../../src/engine/index.js';
import { writeTinyModel } from '../../src/eval/test-models.js';
import { saveModule } from '../../src/nn/index.js';
import { ControlNetModel, UNet2DModel, WEIGHTS_NAME } from '../../src/nn/models/index.js';
import { assertCleanError, assertInputError, sumiInProcess as sumi } from './run-sumi.js';

let dir = '';
let tiny = '';
let other = '';
let cn = '';
const file = (name: string): string => join(dir, name);

const SAMPLE = ['--n', '4', '--steps', '3', '--seed', '7', '--quiet'];

function pixels(path: string): Uint8Array {
  return decodePng(readFileSync(path), path).data as Uint8Array;
}

async function writeGrey(path: string, side: number): Promise<void> {
  const data = Uint8Array.from({ length: side * side }, (_, i) => ((i * 37) % 5 === 0 ? 255 : 0));
  await writeFile(path, encodePng({ width: side, height: side, channels: 1, data }));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-controlnet-cli-'));
  tiny = await writeTinyModel(file('tiny'));
  other = await writeTinyModel(file('other'), { classes: null });
  const p = await loadPipeline(tiny);
  const controlnet = ControlNetModel.fromUNet(p.model as UNet2DModel, {
    conditioningChannels: 1,
    conditioningEmbeddingOutChannels: [4],
    generator: new Generator(3),
  });
  // Trained-looking zero convolutions, so that the ControlNet acts.
  const g = new Generator(4);
  for (const [n, t] of controlnet.namedParameters()) {
    if (n.startsWith('controlnet_down_blocks') || n.startsWith('controlnet_mid_block')) {
      t.setData(randn(t.shape, { generator: g }).mul(0.3));
    }
  }
  cn = file('cn');
  await mkdir(cn);
  await writeFile(join(cn, 'config.json'), controlnet.configJson());
  await saveModule(controlnet, join(cn, WEIGHTS_NAME), { metadata: { format: 'pt' } });
  await writeGrey(file('edges.png'), 8);
  await writeGrey(file('wrong.png'), 16);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('sumi sample --controlnet', () => {
  void test('steers the samples; --control-scale 0 gives the plain model', async () => {
    const plain = await sumi(['sample', '--model', tiny, ...SAMPLE, '--out', file('plain.png')]);
    assert.equal(plain.code, 0, plain.stderr);
    const on = [...SAMPLE, '--controlnet', cn, '--control-image', file('edges.png')];
    const a = await sumi(['sample', '--model', tiny, ...on, '--out', file('a.png')]);
    assert.equal(a.code, 0, a.stderr);
    const z = await sumi([
      'sample',
      '--model',
      tiny,
      ...on,
      '--control-scale',
      '0',
      '--out',
      file('zero.png'),
    ]);
    assert.equal(z.code, 0, z.stderr);
    assert.deepEqual(pixels(file('zero.png')), pixels(file('plain.png')), 'scale 0: plain');
    assert.notDeepEqual(pixels(file('a.png')), pixels(file('plain.png')), 'scale 1: steered');
  });

  void test('refuses a condition image of the wrong size, in one line', async () => {
    const out = file('bad-size.png');
    const r = await sumi([
      'sample',
      '--model',
      tiny,
      ...SAMPLE,
      '--controlnet',
      cn,
      '--control-image',
      file('wrong.png'),
      '--out',
      out,
    ]);
    assertInputError(r, /--control-image .*wrong\.png is 16x16; the ControlNet takes 8x8/, out);
  });

  void test('refuses a ControlNet made for another model, naming the keys', async () => {
    const out = file('misfit.png');
    const r = await sumi([
      'sample',
      '--model',
      other,
      ...SAMPLE,
      '--controlnet',
      cn,
      '--control-image',
      file('edges.png'),
      '--out',
      out,
    ]);
    assertInputError(
      r,
      /--controlnet .*cn does not fit the UNet2DModel: num_class_embeds: controlnet 11, model null/,
      out,
    );
  });

  void test('options without their partner are usage errors', async () => {
    const out = file('lonely.png');
    const r = await sumi([
      'sample',
      '--model',
      tiny,
      ...SAMPLE,
      '--control-image',
      file('edges.png'),
      '--out',
      out,
    ]);
    assertCleanError(r, 2, /--control-image needs --controlnet DIR/);
    const t = await sumi(['train', '--controlnet', '--data', 'mnist', '--out', file('t')]);
    assertCleanError(t, 2, /--controlnet needs --base <model dir>/);
  });
});
