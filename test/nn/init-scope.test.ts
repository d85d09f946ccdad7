/**
 * Initializing weights leaves nothing but the weights: uniform and normal free their draws, so a
 * model built and then freed (a page switching models, a test building many) leaves no tensor.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cpuBackend, Generator, setDefaultBackend, Tensor } from '../../src/engine/index.js';
import { normal, uniform } from '../../src/nn/init.js';
import { createModel } from '../../src/nn/models/index.js';
import { TINY_UNET } from './models/testing.js';

void test('uniform and normal leave one tensor each; a built model only its parameters', () => {
  setDefaultBackend(cpuBackend());
  const before = Tensor.liveCount();
  const g = new Generator(1);
  const u = uniform([3, 4], 0.5, g);
  const n = normal([3, 4], 2, g);
  assert.equal(Tensor.liveCount() - before, 2);
  assert.ok(
    u.dataSync().every((v) => v >= -0.5 && v <= 0.5),
    'U(−0.5, 0.5)',
  );
  u.dispose();
  n.dispose();
  const unet = createModel(
    { _class_name: 'UNet2DModel', ...TINY_UNET },
    { generator: new Generator(0) },
  );
  assert.equal(Tensor.liveCount() - before, unet.parameters().length);
  for (const p of unet.parameters()) p.dispose();
  assert.equal(Tensor.liveCount(), before);
});
