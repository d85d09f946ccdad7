import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  add,
  exp,
  Generator,
  logSoftmax,
  matmulT,
  mean,
  mul,
  randn,
  sub,
  tensor,
} from '../../src/engine/index.js';
import { assertClose, gradcheck } from '../engine/testing.js';
import { DiffusionLMModel, roundingLogits } from '../../src/nn/models/diffusion-lm.js';
import { createSampler } from '../../src/diffusion/generate.js';
import {
  roundingLoss,
  sampleTextIds,
  sqrtScheduleBetas,
  textDenoiser,
  textDiffusionLoss,
  textSchedule,
  textSchedulerConfig,
  tokenNll,
} from '../../src/diffusion/text-diffusion.js';
import { createTextLm, lmPerplexity } from '../../src/diffusion/text-lm.js';

const tiny = {
  vocab_size: 9,
  embedding_dim: 3,
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 8,
  max_position_embeddings: 6,
};

void describe('Diffusion-LM', () => {
  void it('uses the sqrt schedule ᾱ(s) = 1 − √(s + 10⁻⁴)', () => {
    const T = 2000;
    const s = textSchedule(T);
    for (const t of [0, 10, 500, 1500]) {
      const want = (1 - Math.sqrt((t + 1) / T + 1e-4)) / (1 - Math.sqrt(1e-4));
      assertClose([s.alphasCumprod[t]!], [want], { rtol: 1e-9 });
    }
    const cfg = textSchedulerConfig(T);
    assert.equal(cfg.prediction_type, 'sample');
    assert.equal(cfg.clip_sample, false);
    assert.equal((cfg.trained_betas as number[]).length, T);
    assert.equal(sqrtScheduleBetas(T)[3], (cfg.trained_betas as number[])[3]);
  });

  void it('L_round is the mean −log p(w | x) under p ∝ exp(−‖x − E_w‖²), with its gradient', () => {
    const E = randn([5, 2], { seed: 1, dtype: 'float64' });
    const x = randn([2, 3, 2], { seed: 2, dtype: 'float64' });
    const ids = tensor(
      [
        [0, 4, 2],
        [1, 1, 3],
      ],
      [2, 3],
      { dtype: 'int32' },
    );
    const logp = logSoftmax(roundingLogits(x, E), -1).dataSync();
    const w = ids.dataSync();
    let want = 0;
    for (let i = 0; i < 6; i++) want -= logp[i * 5 + w[i]!]!;
    assertClose(roundingLoss(x, E, ids).dataSync(), [want / 6], { rtol: 1e-12 });
    gradcheck((xi, ei) => roundingLoss(xi, ei, ids), [x, E], { name: 'roundingLoss' });
    // Weighted: positions with weight 0 do not count.
    const weights = tensor(
      [
        [1, 0, 1],
        [0, 0, 1],
      ],
      [2, 3],
      { dtype: 'float64' },
    );
    const weighted = -(logp[0 * 5 + 0]! + logp[2 * 5 + 2]! + logp[5 * 5 + 3]!) / 3;
    assertClose(tokenNll(roundingLogits(x, E), ids, weights).dataSync(), [weighted], {
      rtol: 1e-12,
    });
    gradcheck((xi) => tokenNll(roundingLogits(xi, E), ids, weights), [x], { name: 'tokenNll' });
  });

  void it('the end-to-end loss is ‖f(x_t, t) − x_0‖² + ‖√ᾱ_T x_0‖² + L_round', async () => {
    const m = new DiffusionLMModel(tiny, { generator: new Generator(5) });
    await m.to({ dtype: 'float64' });
    const s = textSchedule(100);
    const ids = tensor(
      [
        [2, 5, 3, 0],
        [2, 6, 7, 3],
      ],
      [2, 4],
      { dtype: 'int32' },
    );
    const noise = randn([2, 4, 3], { seed: 6, dtype: 'float64' });
    const noise0 = randn([2, 4, 3], { seed: 7, dtype: 'float64' });
    const ts = [3, 80];
    const r = textDiffusionLoss(m, s, ids, ts, noise, noise0);
    const x0 = add(m.embed(ids), mul(noise0, Math.sqrt(1 - s.alphasCumprod[0]!)));
    const a = tensor([Math.sqrt(s.alphasCumprod[3]!), Math.sqrt(s.alphasCumprod[80]!)], [2, 1, 1], {
      dtype: 'float64',
    });
    const b = tensor(
      [Math.sqrt(1 - s.alphasCumprod[3]!), Math.sqrt(1 - s.alphasCumprod[80]!)],
      [2, 1, 1],
      { dtype: 'float64' },
    );
    const xt = add(mul(a, x0), mul(b, noise));
    const diff = sub(m.forward(xt, ts), x0);
    const mse = mean(mul(diff, diff)).dataSync()[0]!;
    const prior = mean(mul(x0, x0)).dataSync()[0]! * s.alphasCumprod[99]!;
    const rounding = roundingLoss(x0, m.embeddings, ids).dataSync()[0]!;
    assertClose(r.mse.dataSync(), [mse], { rtol: 1e-12 });
    assertClose(r.prior.dataSync(), [prior], { rtol: 1e-12 });
    assertClose(r.rounding.dataSync(), [rounding], { rtol: 1e-12 });
    assertClose(r.loss.dataSync(), [mse + prior + rounding], { rtol: 1e-12 });
    // The embedding is trained end to end: every term reaches it.
    r.loss.backward();
    const g = m.embeddings.grad!.dataSync();
    for (const id of [2, 3, 5, 6, 7]) {
      assert.ok(Math.abs(g[id * 3]!) > 0, `word ${id} gets a gradient`);
    }
  });

  void it('clamps x̂_0 to word vectors and keeps the fixed words of an infill', () => {
    const m = new DiffusionLMModel(tiny, { generator: new Generator(8) });
    const x = randn([2, 4, 3], { seed: 9 });
    const E = m.embeddings.dataSync();
    const clamped = textDenoiser(m, { clamp: true })(x, 50).dataSync();
    for (let p = 0; p < 8; p++) {
      const v = Array.from(clamped.slice(p * 3, p * 3 + 3));
      const match = Array.from({ length: 9 }, (_, w) => w).some((w) =>
        v.every((c, k) => c === E[w * 3 + k]),
      );
      assert.ok(match, `position ${p} is a word vector`);
    }
    const L = 4;
    const infill = {
      ids: Int32Array.from([2, 5, 0, 3, 2, 5, 0, 3]),
      mask: Uint8Array.from([1, 1, 0, 1, 1, 1, 0, 1]),
    };
    const sched = createSampler('ddim', textSchedulerConfig(100));
    const a = sampleTextIds(m, sched, {
      n: 2,
      seqLength: L,
      seed: 3,
      numInferenceSteps: 5,
      infill,
    });
    const b = sampleTextIds(m, sched, {
      n: 2,
      seqLength: L,
      seed: 3,
      numInferenceSteps: 5,
      infill,
    });
    assert.deepEqual(a, b, 'the same seed gives the same sentences');
    for (let i = 0; i < 8; i++) if (infill.mask[i] === 1) assert.equal(a[i], infill.ids[i]);
    assert.ok(
      a.every((id) => id >= 0 && id < 9),
      'ids are words',
    );
  });
});

void describe('the scoring LM', () => {
  void it('perplexity = exp(mean NLL of the words and <eos>), padding ignored', () => {
    const lm = createTextLm(
      9,
      8,
      {
        hidden_size: 8,
        intermediate_size: 8,
        projection_dim: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
      },
      { generator: new Generator(4) },
    );
    const rows6 = Int32Array.from([2, 5, 6, 3, 0, 0, 2, 7, 3, 0, 0, 0]);
    const rows8 = Int32Array.from([2, 5, 6, 3, 0, 0, 0, 0, 2, 7, 3, 0, 0, 0, 0, 0]);
    const p6 = lmPerplexity(lm, rows6, 6);
    const p8 = lmPerplexity(lm, rows8, 8);
    assert.equal(p6.tokens, 5);
    assertClose([p6.perplexity], [p8.perplexity], { rtol: 1e-5 });
    // By hand: the tied-embedding logits of the causal transformer.
    const ids = tensor([[2, 5, 6]], [1, 3], { dtype: 'int32' });
    const h = lm.forward(ids, tensor([[1, 1, 1]], [1, 3], { dtype: 'int32' })).lastHiddenState;
    const logits = matmulT(h, lm.textModel.embeddings.tokenEmbedding.weight, false, true);
    const logp = logSoftmax(logits, -1).dataSync();
    const nll1 = -(logp[0 * 9 + 5]! + logp[1 * 9 + 6]! + logp[2 * 9 + 3]!);
    const one = lmPerplexity(lm, rows6.subarray(0, 6), 6);
    assertClose([one.perplexity], [exp(tensor([nll1 / 3])).dataSync()[0]!], { rtol: 1e-5 });
  });
});
