import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, mul, randn, sum } from '../../../src/engine/index.js';
import { VectorQuantizer } from '../../../src/nn/models/vae.js';
import { VQModel } from '../../../src/nn/models/vq-model.js';

const g = new Generator(21);

void describe('VectorQuantizer', () => {
  const q = new VectorQuantizer(5, 3, 0.25, undefined);
  const z = randn([2, 3, 2, 2], { generator: g, dtype: 'float32' }).requireGrad();

  void it('starts from U(−1/n, 1/n) and picks the nearest codebook row for every position', () => {
    const e = q.embedding.weight.dataSync();
    assert.ok(
      [...e].every((v) => Math.abs(v) <= 1 / 5),
      'codebook within ±1/5',
    );
    const { quantized, indices } = q.forward(z);
    assert.deepEqual(quantized.shape, [2, 3, 2, 2]);
    const zv = z.dataSync();
    const idx = indices.dataSync();
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < 4; p++) {
        const vec = [0, 1, 2].map((c) => zv[b * 12 + c * 4 + p]!);
        let best = 0;
        let bestD = Infinity;
        for (let k = 0; k < 5; k++) {
          const d = vec.reduce((s, v, c) => s + (v - e[k * 3 + c]!) ** 2, 0);
          if (d < bestD) [best, bestD] = [k, d];
        }
        assert.equal(idx[b * 4 + p], best);
        const qv = quantized.dataSync();
        [0, 1, 2].forEach((c) =>
          assert.ok(
            Math.abs(qv[b * 12 + c * 4 + p]! - e[best * 3 + c]!) < 1e-6,
            `position ${b}/${p}, channel ${c}`,
          ),
        );
      }
    }
  });

  void it('passes the gradient straight through and weighs the loss as diffusers (legacy)', () => {
    const { quantized, loss } = q.forward(z);
    const zq = quantized.dataSync();
    const zv = z.dataSync();
    let sq = 0;
    zv.forEach((v, i) => (sq += (zq[i]! - v) ** 2));
    const mse = sq / zv.length;
    assert.ok(
      Math.abs(loss.dataSync()[0]! - 1.25 * mse) < 1e-5 * mse,
      `loss ${loss.dataSync()[0]}, 1.25 · MSE ${1.25 * mse}`,
    );
    const r = randn([2, 3, 2, 2], { generator: g });
    z.zeroGrad();
    sum(mul(quantized, r)).backward();
    const gz = z.grad!.dataSync();
    r.dataSync().forEach((v, i) =>
      assert.ok(Math.abs(gz[i]! - v) < 1e-6, `gradient ${i}: ${gz[i]} vs ${v}`),
    );
    q.forward(z).loss.backward();
    assert.ok(q.embedding.weight.grad !== null, 'the codebook loss reaches the codebook');
  });
});

void describe('VQModel', () => {
  void it('encodes, quantizes and decodes with diffusers names', () => {
    const m = new VQModel({
      block_out_channels: [8, 16],
      down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
      up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
      norm_num_groups: 4,
      num_vq_embeddings: 7,
      vq_embed_dim: 5,
    });
    const names = new Map(m.namedParameters().map(([n, p]) => [n, p.shape]));
    assert.deepEqual(names.get('quantize.embedding.weight'), [7, 5]);
    assert.deepEqual(names.get('quant_conv.weight'), [5, 3, 1, 1]);
    assert.deepEqual(names.get('encoder.conv_out.weight'), [3, 16, 3, 3]);
    const x = randn([1, 3, 8, 8], { generator: g });
    const h = m.encode(x);
    assert.deepEqual(h.shape, [1, 5, 4, 4]);
    const out = m.forward(x);
    assert.deepEqual(out.sample.shape, [1, 3, 8, 8]);
    assert.equal(out.commitLoss.size, 1);
    assert.equal(m.decode(h, { forceNotQuantize: true }).commitLoss.dataSync()[0], 0);
  });
});
