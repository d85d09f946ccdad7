import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { concat, cpuBackend, full, randn, type Tensor, tensor } from '../../../src/engine/index.js';
import { makeSchedule, type VlbModel } from '../../../src/diffusion/index.js';
import { datasetNll, nllNoiseOffset } from '../../../src/eval/metrics/nll.js';
import { hashUniform } from './test-data.js';
import { assertClose } from '../../engine/testing.js';

const f64 = { dtype: 'float64' } as const;
const LN2 = Math.LN2;
const T = 10;
const s = makeSchedule(Float64Array.from({ length: T }, (_, t) => 0.05 + (0.45 * t) / (T - 1)));
const SHAPE = [2, 2, 2];
const D = 8;
const H = 1 / 255; // half a bin of the 256-level grid

/** erf by its Maclaurin series (the test's own; accurate for |x| < 3). */
function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** Φ(b) − Φ(a) for a < b. */
function normalMass(a: number, b: number): number {
  return 0.5 * (erfSeries(b / Math.SQRT2) - erfSeries(a / Math.SQRT2));
}

/** An image on the 256-level grid of [−0.3, 0.3] (inside, away from the edge bins). */
function gridImage(stream: number): Float64Array {
  return Float64Array.from(
    { length: D },
    (_, i) => -1 + (2 * (90 + Math.floor(hashUniform(stream, i) * 76))) / 255,
  );
}

function batch(images: Float64Array[]): Tensor {
  const data = new Float64Array(images.length * D);
  images.forEach((im, b) => data.set(im, b * D));
  return tensor(data, [images.length, ...SHAPE], f64);
}

/** L_T = KL(N(√ᾱ x, 1 − ᾱ) ‖ N(0, 1)) per dimension, in bits. */
function priorBits(x: Float64Array): number {
  const a = s.alphasCumprod[T - 1]!;
  let kl = 0;
  for (const v of x) kl += 0.5 * (-1 - Math.log(1 - a) + (1 - a) + a * v * v);
  return kl / D / LN2;
}

/**
 * L_0 = −log P(x | mean) under the 256-bin Gaussian of variance σ² (β̃_1 unless given; interior
 * bins), bits/dim.
 */
function decoderBits(
  x: Float64Array,
  mean: Float64Array,
  variance = s.posteriorVariance[1]!,
): number {
  const sigma = Math.sqrt(variance);
  let nll = 0;
  for (let i = 0; i < D; i++) {
    const c = x[i]! - mean[i]!;
    nll -= Math.log(normalMass((c - H) / sigma, (c + H) / sigma));
  }
  return nll / D / LN2;
}

/** L_{t−1} when both variances are β̃_t: Σ (c1_t (x_0 − x̂_0))² / (2 β̃_t), bits/dim. */
function klBits(t: number, x: Float64Array, x0Hat: Float64Array): number {
  const c1 = s.posteriorMeanCoef1[t]!;
  let kl = 0;
  for (let i = 0; i < D; i++) kl += (c1 * (x[i]! - x0Hat[i]!)) ** 2 / (2 * s.posteriorVariance[t]!);
  return kl / D / LN2;
}

const images = [gridImage(1), gridImage(2), gridImage(3)];
const zeros = new Float64Array(D);

void describe('datasetNll: a zero-output x_0 model (x̂_0 = 0) against its closed form', () => {
  // x̂_0 = 0: every KL is c1² x² / (2β̃_t) whatever the noise, the decoder mean is 0.
  const zeroModel: VlbModel = (xt) => full(xt.shape, 0, f64);
  const closedForm = (x: Float64Array) => {
    const terms = Array.from({ length: T }, (_, t) =>
      t === 0 ? decoderBits(x, zeros) : klBits(t, x, zeros),
    );
    return { terms, total: priorBits(x) + terms.reduce((p, q) => p + q, 0) };
  };

  void it('every term, the per-image bound, the mean and its standard error', async () => {
    const live = cpuBackend().liveCount();
    const data = [batch(images.slice(0, 2)), batch(images.slice(2))];
    const r = await datasetNll(s, zeroModel, data, { predictionType: 'sample' });
    for (const d of data) d.dispose();
    assert.equal(cpuBackend().liveCount(), live, 'datasetNll frees what it makes');
    assert.equal(r.estimator, 'exact', 'stride 1 is the exact bound');
    assert.equal(r.modelCallsPerImage, T, 'T calls per image');
    const want = images.map(closedForm);
    want.forEach((w, i) =>
      assertClose(r.perImage[i]!, w.total, { rtol: 0, atol: 1e-9 }, `image ${i}`),
    );
    for (let t = 0; t < T; t++) {
      const m = want.reduce((acc, w) => acc + w.terms[t]!, 0) / 3;
      assertClose(r.termMeans![t]!, m, { rtol: 0, atol: 1e-9 }, `term ${t}`);
    }
    const mean = want.reduce((acc, w) => acc + w.total, 0) / 3;
    const sd = Math.sqrt(want.reduce((acc, w) => acc + (w.total - mean) ** 2, 0) / 2);
    assertClose(r.bitsPerDim, mean, { rtol: 0, atol: 1e-9 }, 'mean');
    assertClose(r.standardError, sd / Math.sqrt(3), { rtol: 0, atol: 1e-9 }, 'standard error');
    assertClose(
      r.prior + r.kl + r.decoder,
      r.bitsPerDim,
      { rtol: 0, atol: 1e-12 },
      'the parts add up',
    );
  });

  void it('a learned_range output of v = −1 is β̃_t itself: the same bound', async () => {
    const learned: VlbModel = (xt) => concat([full(xt.shape, 0, f64), full(xt.shape, -1, f64)], 1);
    const data = [batch(images)];
    const a = await datasetNll(s, zeroModel, data, { predictionType: 'sample' });
    const b = await datasetNll(s, learned, data, {
      predictionType: 'sample',
      varianceType: 'learned_range',
    });
    data[0]!.dispose();
    a.perImage.forEach((v, i) =>
      assertClose(b.perImage[i]!, v, { rtol: 0, atol: 1e-12 }, `image ${i}`),
    );
  });

  void it('learned_range outputs v = ±1: the bounds at Σ = β̃_t and at Σ = β_t, in closed form', async () => {
    // log Σ_θ = ((v+1)/2) log β_t + (1 − (v+1)/2) log β̃_t: v = −1 gives β̃_t (β̃_1 at t = 0,
    // the clipped value), v = +1 gives β_t (β_0 at t = 0). With x̂_0 = 0 the model mean misses
    // the posterior mean by c1_t x_0, so with Σ = β_t
    //   L_{t−1} = Σ_i ½ (−1 + log(β_t/β̃_t) + β̃_t/β_t + (c1_t x_i)²/β_t) / D / ln 2.
    const klLarge = (t: number, x: Float64Array): number => {
      const b = s.betas[t]!;
      const pv = s.posteriorVariance[t]!;
      const c1 = s.posteriorMeanCoef1[t]!;
      let kl = 0;
      for (const v of x) kl += 0.5 * (-1 + Math.log(b / pv) + pv / b + (c1 * v) ** 2 / b);
      return kl / D / LN2;
    };
    const bound = (x: Float64Array, v: 1 | -1): number => {
      let total = priorBits(x);
      for (let t = 1; t < T; t++) total += v === 1 ? klLarge(t, x) : klBits(t, x, zeros);
      return total + (v === 1 ? decoderBits(x, zeros, s.betas[0]) : decoderBits(x, zeros));
    };
    const data = [batch(images)];
    const got: Record<1 | -1, Float64Array> = { 1: new Float64Array(), [-1]: new Float64Array() };
    for (const v of [1, -1] as const) {
      const learned: VlbModel = (xt) => concat([full(xt.shape, 0, f64), full(xt.shape, v, f64)], 1);
      const r = await datasetNll(s, learned, data, {
        predictionType: 'sample',
        varianceType: 'learned_range',
      });
      got[v] = r.perImage;
      images.forEach((x, i) =>
        assertClose(r.perImage[i]!, bound(x, v), { rtol: 0, atol: 1e-9 }, `v = ${v}, image ${i}`),
      );
    }
    data[0]!.dispose();
    assert.ok(
      got[1].every((b, i) => Math.abs(b - got[-1][i]!) > 1e-3),
      'the two variances give different bounds',
    );
  });

  void it('the stratified estimate is unbiased (averaged over seeds) and says what it is', async () => {
    const data = [batch(images)];
    const exact = await datasetNll(s, zeroModel, data, { predictionType: 'sample' });
    const runs = 120;
    const est: number[] = [];
    for (let seed = 0; seed < runs; seed++) {
      const r = await datasetNll(s, zeroModel, data, {
        predictionType: 'sample',
        timestepStride: 4,
        seed,
      });
      assert.equal(r.estimator, 'stratified', 'stated as an estimate');
      assert.equal(r.modelCallsPerImage, 1 + 3, 'L_0 and one call per stratum of 4 of t = 1…9');
      assert.equal(r.termMeans, null, 'no per-term means');
      assertClose(r.prior, exact.prior, { rtol: 0, atol: 1e-12 }, 'L_T is exact');
      assertClose(r.decoder, exact.decoder, { rtol: 0, atol: 1e-12 }, 'L_0 is exact');
      est.push(r.bitsPerDim);
    }
    data[0]!.dispose();
    const m = est.reduce((p, q) => p + q, 0) / runs;
    const sd = Math.sqrt(est.reduce((p, q) => p + (q - m) ** 2, 0) / (runs - 1));
    assert.ok(sd > 0, 'the estimate varies with the seed');
    assert.ok(
      Math.abs(m - exact.bitsPerDim) < 4 * (sd / Math.sqrt(runs)),
      `mean estimate ${m} ± ${sd / Math.sqrt(runs)} vs the bound ${exact.bitsPerDim}`,
    );
  });
});

void describe('datasetNll: optimal denoisers', () => {
  void it('a single-image dataset: ε̂ = (x_t − √ᾱ x*)/σ zeroes every KL; bound = L_T + L_0', async () => {
    const xs = images[0]!;
    const x0 = batch([xs]);
    const oracle: VlbModel = (xt, ts) => {
      const a = s.sqrtAlphasCumprod[ts[0]!]!;
      const sg = s.sqrtOneMinusAlphasCumprod[ts[0]!]!;
      const v = xt.dataSync();
      return tensor(
        Float64Array.from(v, (u, i) => (u - a * xs[i % D]!) / sg),
        xt.shape,
        f64,
      );
    };
    const want = priorBits(xs) + decoderBits(xs, xs);
    for (const stride of [1, 3]) {
      const r = await datasetNll(s, oracle, [x0], { timestepStride: stride, seed: 5 });
      assertClose(r.perImage[0]!, want, { rtol: 0, atol: 1e-9 }, `stride ${stride}: bound`);
      assertClose(r.kl, 0, { rtol: 0, atol: 1e-10 }, `stride ${stride}: Σ KL`);
      assert.ok(r.n === 1 && Number.isNaN(r.standardError), 'one image: no standard error');
    }
    x0.dispose();
  });

  void it('a two-image dataset: the posterior-mean denoiser, term by term against plain loops', async () => {
    const pair = [images[1]!, images[2]!];
    // E[x_0 | x_t] = Σ_k w_k x^(k), w_k ∝ exp(−‖x_t − √ᾱ x^(k)‖² / (2(1 − ᾱ))).
    const posteriorMean = (xt: ArrayLike<number>, t: number): Float64Array => {
      const a = s.sqrtAlphasCumprod[t]!;
      const v = 1 - s.alphasCumprod[t]!;
      const logw = pair.map((x) => {
        let q = 0;
        for (let i = 0; i < D; i++) q += (xt[i]! - a * x[i]!) ** 2;
        return -q / (2 * v);
      });
      const top = Math.max(...logw);
      const w = logw.map((l) => Math.exp(l - top));
      const z = w[0]! + w[1]!;
      return Float64Array.from(
        { length: D },
        (_, i) => (w[0]! * pair[0]![i]! + w[1]! * pair[1]![i]!) / z,
      );
    };
    const model: VlbModel = (xt, ts) => {
      const v = xt.dataSync();
      const out = new Float64Array(v.length);
      ts.forEach((t, b) => {
        const x0Hat = posteriorMean(v.subarray(b * D, (b + 1) * D), t);
        const a = s.sqrtAlphasCumprod[t]!;
        const sg = s.sqrtOneMinusAlphasCumprod[t]!;
        for (let i = 0; i < D; i++) out[b * D + i] = (v[b * D + i]! - a * x0Hat[i]!) / sg;
      });
      return tensor(out, xt.shape, f64);
    };
    const seed = 9;
    const together = await datasetNll(s, model, [batch(pair)], { seed });
    const apart = await datasetNll(s, model, [batch([pair[0]!]), batch([pair[1]!])], { seed });
    pair.forEach((x, i) => {
      // The noise of image i at t is the documented Philox draw.
      let total = priorBits(x);
      for (let t = 0; t < T; t++) {
        const eps = randn([D], { seed, offset: nllNoiseOffset(i, t, T, D), ...f64 }).dataSync();
        const xt = Float64Array.from(
          x,
          (v, j) => s.sqrtAlphasCumprod[t]! * v + s.sqrtOneMinusAlphasCumprod[t]! * eps[j]!,
        );
        const x0Hat = posteriorMean(xt, t);
        total += t === 0 ? decoderBits(x, x0Hat) : klBits(t, x, x0Hat);
      }
      assertClose(together.perImage[i]!, total, { rtol: 0, atol: 1e-9 }, `image ${i}`);
      assertClose(
        apart.perImage[i]!,
        together.perImage[i]!,
        { rtol: 0, atol: 1e-13 },
        `image ${i}: batching does not matter`,
      );
    });
    assert.ok(together.kl > 1e-3, `the KL terms are not trivial here (${together.kl})`);
  });

  void it('rejects a bad stride and an empty dataset', async () => {
    const m: VlbModel = (xt) => full(xt.shape, 0, f64);
    await assert.rejects(datasetNll(s, m, [], {}), /empty/);
    await assert.rejects(datasetNll(s, m, [], { timestepStride: 0 }), /timestepStride/);
  });
});
