import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, randn, tensor } from '../../../src/engine/index.js';
import { assertClose, gradcheck } from '../../engine/testing.js';
import { ConfigError } from '../../../src/nn/models/config.js';
import {
  DiffusionLMModel,
  embeddingsAt,
  nearestEmbedding,
  resolveDiffusionLMConfig,
  roundingLogits,
} from '../../../src/nn/models/diffusion-lm.js';

const tiny = {
  vocab_size: 11,
  embedding_dim: 4,
  hidden_size: 8,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 12,
  max_position_embeddings: 6,
};

void describe('DiffusionLMModel', () => {
  void it('maps x_t [B, L, d] and one timestep per row to x̂_0 [B, L, d]', () => {
    const m = new DiffusionLMModel(tiny, { generator: new Generator(1) });
    const x = randn([3, 5, 4], { seed: 2 });
    const y = m.forward(x, [0, 10, 1999]);
    assert.deepEqual(y.shape, [3, 5, 4]);
    // The timestep matters: another t gives another x̂_0.
    const y2 = m.forward(x, [5, 10, 1999]);
    const a = y.dataSync();
    const b = y2.dataSync();
    assert.notEqual(a[0], b[0]);
    assertClose(a.slice(20), b.slice(20), { atol: 0, rtol: 0 });
    assert.deepEqual(m.embed(tensor([[1, 2]], [1, 2], { dtype: 'int32' })).shape, [1, 2, 4]);
    assert.match(m.configJson(), /"_class_name": "DiffusionLMTransformer"/);
  });

  void it('refuses bad configs and inputs, naming the key or shape', () => {
    assert.throws(
      () => resolveDiffusionLMConfig({ ...tiny, hidden_size: 9 }),
      (e: Error) =>
        e instanceof ConfigError && /not divisible by num_attention_heads 2/.test(e.message),
    );
    assert.throws(() => resolveDiffusionLMConfig({ vocab: 3 }), /vocab: unknown key/);
    const m = new DiffusionLMModel(tiny, { generator: new Generator(1) });
    assert.throws(() => m.forward(randn([1, 5, 3], { seed: 0 }), 0), /x_t must be \[B, L, 4\]/);
    assert.throws(
      () => m.forward(randn([1, 7, 4], { seed: 0 }), 0),
      /exceeds max_position_embeddings 6/,
    );
  });

  void it('has the gradient of x̂_0 with respect to x_t (float64 finite differences)', async () => {
    const m = new DiffusionLMModel(tiny, { generator: new Generator(3) });
    await m.to({ dtype: 'float64' });
    const x = randn([2, 3, 4], { seed: 4, dtype: 'float64' });
    gradcheck((xi) => m.forward(xi, [7, 300]), [x], { name: 'DiffusionLMModel wrt x_t' });
  });
});

void describe('rounding', () => {
  const E = tensor(
    [
      [0, 0],
      [1, 0],
      [0, 2],
      [-1, -1],
    ],
    [4, 2],
    { dtype: 'float64' },
  );
  const x = tensor(
    [
      [
        [0.9, 0.1],
        [0.2, 1.4],
        [-0.4, -0.7],
        [0.1, 0.2],
      ],
    ],
    [1, 4, 2],
    {
      dtype: 'float64',
    },
  );

  void it('logits are −‖x − E_w‖² up to ‖x‖², and the nearest embedding is their argmax', () => {
    const got = roundingLogits(x, E).dataSync();
    const xs = x.dataSync();
    const es = E.dataSync();
    const want: number[] = [];
    for (let i = 0; i < 4; i++) {
      const xi = [xs[2 * i]!, xs[2 * i + 1]!];
      for (let w = 0; w < 4; w++) {
        const d2 = (xi[0]! - es[2 * w]!) ** 2 + (xi[1]! - es[2 * w + 1]!) ** 2;
        want.push(-d2 + xi[0]! ** 2 + xi[1]! ** 2);
      }
    }
    assertClose(got, want, { atol: 1e-12 });
    assert.deepEqual(Array.from(nearestEmbedding(x, E).dataSync()), [1, 2, 3, 0]);
    // Clamping replaces each vector by its nearest word vector.
    assertClose(embeddingsAt(E, nearestEmbedding(x, E)).dataSync(), [1, 0, 0, 2, -1, -1, 0, 0], {
      atol: 0,
    });
  });

  void it('has the gradient of the logits with respect to x and E', () => {
    gradcheck((xi, ei) => roundingLogits(xi, ei), [x, E], { name: 'roundingLogits' });
  });
});
