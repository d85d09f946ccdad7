import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { add, concat, full, mul, randn, type Tensor, tensor } from '../../src/engine/index.js';
import {
  addNoise,
  coefAt,
  getVelocity,
  predictedEpsilon,
  type PredictionType,
} from '../../src/diffusion/forward.js';
import {
  computeSnr,
  lossTarget,
  minSnrWeights,
  modelDistributionFromParts,
  normalKl,
  simpleLoss,
  trainingLoss,
  trainingLossTerms,
  vbTermBpd,
} from '../../src/diffusion/losses.js';
import { defaultScheduleConfig, makeSchedule } from '../../src/diffusion/schedule.js';
import { assertRelClose } from '../engine/testing.js';

const f64 = { dtype: 'float64' } as const;
const s = makeSchedule(defaultScheduleConfig);
const SHAPE = [4, 3, 4, 4];
const PER = 48;
const TYPES: PredictionType[] = ['epsilon', 'sample', 'v_prediction'];

function vals(t: Tensor): Float64Array {
  return t.dataSync() as Float64Array;
}

/** Per-sample mean of (a − b)². */
function perSample(a: Tensor, b: Tensor): number[] {
  const [av, bv] = [vals(a), vals(b)];
  return Array.from({ length: SHAPE[0]! }, (_, n) => {
    let acc = 0;
    for (let i = n * PER; i < (n + 1) * PER; i++) acc += (av[i]! - bv[i]!) ** 2;
    return acc / PER;
  });
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

void describe('L_simple', () => {
  const x0 = randn(SHAPE, { seed: 1, ...f64 });
  const noise = randn(SHAPE, { seed: 2, ...f64 });
  const ts = [0, 10, 500, 999];

  void it('targets: ε, x_0, and v = √ᾱ ε − √(1 − ᾱ) x_0', () => {
    assert.deepEqual([...vals(lossTarget(s, 'epsilon', x0, noise, ts))], [...vals(noise)]);
    assert.deepEqual([...vals(lossTarget(s, 'sample', x0, noise, ts))], [...vals(x0)]);
    const v = vals(lossTarget(s, 'v_prediction', x0, noise, ts));
    v.forEach((got, i) => {
      const t = ts[Math.floor(i / PER)]!;
      const want =
        Math.sqrt(s.alphasCumprod[t]!) * vals(noise)[i]! -
        Math.sqrt(1 - s.alphasCumprod[t]!) * vals(x0)[i]!;
      assert.ok(Math.abs(got - want) < 1e-15, `target at ${i}: ${got} vs ${want}`);
    });
  });

  void it('is the mean over all elements, or the weighted mean of per-sample means', () => {
    const out = randn(SHAPE, { seed: 3, ...f64 });
    const per = perSample(out, noise);
    assertRelClose(simpleLoss(out, noise).itemSync(), mean(per), 1e-12);
    const w = [0.5, 2, 0, 1.25];
    const want = mean(per.map((p, i) => p * w[i]!));
    assertRelClose(simpleLoss(out, noise, w).itemSync(), want, 1e-12);
    assertRelClose(
      simpleLoss(out, noise, tensor(Float64Array.from(w), [4], f64)).itemSync(),
      want,
      1e-12,
    );
    assert.throws(() => simpleLoss(out, noise, [1, 2]), /2 loss weights for a batch of 4/);
  });

  void it('trainingLoss is DDPM Algorithm 1: zero at the exact output, the MSE otherwise', () => {
    const xt = addNoise(s, x0, noise, ts);
    for (const type of TYPES) {
      const exact = lossTarget(s, type, x0, noise, ts);
      assert.ok(
        trainingLoss(
          s,
          { x0, noise, timesteps: ts, modelOutput: exact },
          { predictionType: type },
        ).itemSync() < 1e-30,
        'trainingLoss(s, { x0, noise, timesteps: ts, modelOutput: exact }, { predictionTy',
      );
      const out = add(exact, mul(randn(SHAPE, { seed: 4, ...f64 }), 0.1));
      const got = trainingLoss(
        s,
        { x0, noise, timesteps: ts, modelOutput: out, xt },
        { predictionType: type },
      );
      assertRelClose(got.itemSync(), mean(perSample(out, exact)), 1e-12, type);
    }
  });

  void it('gradient with respect to the output is 2 w (output − target) / N', () => {
    const out = randn(SHAPE, { seed: 5, ...f64 }).requireGrad();
    const w = [1, 0.5, 2, 3];
    const loss = trainingLoss(s, { x0, noise, timesteps: ts, modelOutput: out }, { weights: w });
    loss.backward();
    const g = vals(out.grad!);
    const N = SHAPE.reduce((a, b) => a * b);
    g.forEach((gi, i) => {
      const want = (2 * w[Math.floor(i / PER)]! * (vals(out)[i]! - vals(noise)[i]!)) / N;
      assert.ok(Math.abs(gi - want) < 1e-15, `gradient at ${i}: ${gi} vs ${want}`);
    });
  });

  void it('rejects an output of the wrong shape', () => {
    const bad = randn([4, 6, 4, 4], { seed: 1, ...f64 });
    assert.throws(
      () => trainingLoss(s, { x0, noise, timesteps: ts, modelOutput: bad }),
      /does not match/,
    );
  });
});

void describe('min-SNR-γ weighting', () => {
  const ts = [0, 100, 300, 600, 999];
  const snr = computeSnr(s, ts);

  void it('SNR_t = ᾱ_t / (1 − ᾱ_t)', () => {
    ts.forEach((t, i) =>
      assertRelClose(snr[i]!, s.alphasCumprod[t]! / (1 - s.alphasCumprod[t]!), 1e-12),
    );
    assert.ok(snr[0]! > 5 && snr[4]! < 5, 'the timesteps straddle γ = 5');
  });

  void it('weights: min(SNR, γ)/SNR (ε), min(SNR, γ) (x_0), min(SNR, γ)/(SNR + 1) (v)', () => {
    const g = 5;
    const eps = minSnrWeights(s, ts, g, 'epsilon');
    const x0w = minSnrWeights(s, ts, g, 'sample');
    const vw = minSnrWeights(s, ts, g, 'v_prediction');
    snr.forEach((r, i) => {
      assertRelClose(eps[i]!, Math.min(r, g) / r, 1e-12);
      assertRelClose(x0w[i]!, Math.min(r, g), 1e-12);
      assertRelClose(vw[i]!, Math.min(r, g) / (r + 1), 1e-12);
    });
    // Above γ the ε weight is γ/SNR < 1; below it, exactly 1.
    assert.ok(eps[0]! < 1 && eps[4] === 1, `ε weights ${eps[0]} (above γ), ${eps[4]} (below)`);
    assert.throws(() => minSnrWeights(s, ts, 0, 'epsilon'), /positive/);
  });

  void it('makes the loss the same in every parameterization: min(SNR, γ) ‖x_0 − x̂_0‖²', () => {
    // One imperfect denoiser, expressed as ε̂, x̂_0 and v̂: ‖ε − ε̂‖² = SNR ‖x_0 − x̂_0‖² and
    // ‖v − v̂‖² = (SNR + 1) ‖x_0 − x̂_0‖², so the three weighted losses agree.
    const shape = [5, 2, 3, 3];
    const x0 = randn(shape, { seed: 7, ...f64 });
    const noise = randn(shape, { seed: 8, ...f64 });
    const xt = addNoise(s, x0, noise, ts);
    const x0hat = add(x0, mul(randn(shape, { seed: 9, ...f64 }), 0.3));
    const alpha = coefAt(s.sqrtAlphasCumprod, ts, xt);
    const sigma = coefAt(s.sqrtOneMinusAlphasCumprod, ts, xt);
    const epsHat = predictedEpsilon('sample', x0hat, xt, alpha, sigma);
    const vHat = getVelocity(s, x0hat, epsHat, ts);
    const outputs: Record<PredictionType, Tensor> = {
      epsilon: epsHat,
      sample: x0hat,
      v_prediction: vHat,
    };
    const losses = TYPES.map((type) =>
      trainingLoss(
        s,
        { x0, noise, timesteps: ts, modelOutput: outputs[type] },
        { predictionType: type, snrGamma: 5 },
      ).itemSync(),
    );
    assertRelClose(losses[0]!, losses[1]!, 1e-10, 'ε vs x0');
    assertRelClose(losses[2]!, losses[1]!, 1e-10, 'v vs x0');
    // And without weighting they differ (the test can fail).
    const plain = TYPES.map((type) =>
      trainingLoss(
        s,
        { x0, noise, timesteps: ts, modelOutput: outputs[type] },
        { predictionType: type },
      ).itemSync(),
    );
    assert.ok(
      Math.abs(plain[0]! - plain[1]!) > 0.1 * plain[1]!,
      `the weighting changes the loss: ${plain[0]} vs ${plain[1]}`,
    );
  });

  void it('at zero terminal SNR: ε weight 1, x_0 and v weight 0', () => {
    const z = makeSchedule({ ...defaultScheduleConfig, rescaleBetasZeroSnr: true });
    assert.equal(computeSnr(z, [999])[0], 0);
    assert.equal(minSnrWeights(z, [999], 5, 'epsilon')[0], 1);
    assert.equal(minSnrWeights(z, [999], 5, 'sample')[0], 0);
    assert.equal(minSnrWeights(z, [999], 5, 'v_prediction')[0], 0);
  });
});

void describe('hybrid loss (learned variance)', () => {
  const x0 = tensor(
    vals(randn(SHAPE, { seed: 11, ...f64 })).map((v) =>
      Math.max(-1, Math.min(1, Math.round(v * 60) / 127.5)),
    ),
    SHAPE,
    f64,
  );
  const noise = randn(SHAPE, { seed: 12, ...f64 });
  const ts = [0, 3, 400, 999];
  const xt = addNoise(s, x0, noise, ts);

  for (const varianceType of ['learned_range', 'learned'] as const) {
    void it(`${varianceType}: loss = MSE + λT · vb, vb the bound term at the model's variance`, () => {
      const meanPart = add(noise, mul(randn(SHAPE, { seed: 13, ...f64 }), 0.2));
      const varPart =
        varianceType === 'learned_range'
          ? mul(randn(SHAPE, { seed: 14, ...f64 }).tanh(), 1)
          : add(mul(randn(SHAPE, { seed: 14, ...f64 }), 0.1), -8).exp();
      const out = concat([meanPart, varPart], 1);
      const r = trainingLossTerms(
        s,
        { x0, noise, timesteps: ts, modelOutput: out },
        { varianceType },
      );
      const mse = perSample(meanPart, noise);
      assert.ok(
        vals(r.mse).every((m, i) => Math.abs(m - mse[i]!) < 1e-14),
        `${varianceType}: per-sample MSE of the mean part`,
      );
      const dist = modelDistributionFromParts(s, meanPart, varPart, xt, ts, { varianceType });
      const vb = vals(vbTermBpd(s, x0, xt, ts, dist));
      assert.deepEqual([...vals(r.vb!)], [...vb]);
      // λ = 0.001 and T = 1000: the vb term enters with weight 1 (improved DDPM's RESCALED_MSE).
      assertRelClose(r.loss.itemSync(), mean(mse.map((m, i) => m + vb[i]!)), 1e-12);
      const half = trainingLossTerms(
        s,
        { x0, noise, timesteps: ts, modelOutput: out },
        { varianceType, vlbWeight: 0.0005 },
      );
      assertRelClose(half.loss.itemSync(), mean(mse.map((m, i) => m + 0.5 * vb[i]!)), 1e-12);
      // Where t > 0 the vb term is the KL to the true posterior, in bits/dim.
      const kl = vals(
        normalKl(
          add(
            mul(coefAt(s.posteriorMeanCoef1, ts, x0), x0),
            mul(coefAt(s.posteriorMeanCoef2, ts, x0), xt),
          ),
          coefAt(s.posteriorLogVarianceClipped, ts, x0),
          dist.mean,
          dist.logVariance,
        ),
      );
      for (let b = 1; b < 4; b++) {
        let acc = 0;
        for (let i = b * PER; i < (b + 1) * PER; i++) acc += kl[i]!;
        assertRelClose(vb[b]!, acc / PER / Math.LN2, 1e-12, `kl ${b}`);
      }
    });
  }

  void it('the VLB term trains only the variance: the mean part gets exactly the MSE gradient', () => {
    const meanPart = add(noise, mul(randn(SHAPE, { seed: 15, ...f64 }), 0.2));
    const varPart = mul(randn(SHAPE, { seed: 16, ...f64 }), 0.5);
    const out = concat([meanPart, varPart], 1).requireGrad();
    const loss = trainingLoss(
      s,
      { x0, noise, timesteps: ts, modelOutput: out },
      { varianceType: 'learned_range' },
    );
    loss.backward();
    const g = vals(out.grad!);
    const N = SHAPE.reduce((a, b) => a * b);
    const mv = vals(meanPart);
    const nv = vals(noise);
    const C = SHAPE[1]!;
    const hw = 16;
    let varGradNorm = 0;
    for (let b = 0; b < 4; b++) {
      for (let c = 0; c < 2 * C; c++) {
        for (let p = 0; p < hw; p++) {
          const gi = g[(b * 2 * C + c) * hw + p]!;
          if (c < C) {
            const i = (b * C + c) * hw + p;
            assert.ok(Math.abs(gi - (2 * (mv[i]! - nv[i]!)) / N) < 1e-15, 'mean-part gradient');
          } else varGradNorm += gi * gi;
        }
      }
    }
    assert.ok(varGradNorm > 0, 'the variance part gets a gradient from the VLB term');
    // And that gradient is the VLB's: check one element by central differences.
    const idx = (1 * 2 * C + C + 1) * hw + 5; // sample 1, variance channel 1, pixel 5
    const base = vals(out).slice();
    const f = (delta: number) => {
      const v = base.slice();
      v[idx]! += delta;
      const o = tensor(v, [4, 2 * C, 4, 4], f64);
      return trainingLoss(
        s,
        { x0, noise, timesteps: ts, modelOutput: o },
        { varianceType: 'learned_range' },
      ).itemSync();
    };
    const h = 1e-6;
    const fd = (f(h) - f(-h)) / (2 * h);
    assert.ok(Math.abs(g[idx]! - fd) < 1e-6 * Math.max(1, Math.abs(fd)), `${g[idx]} vs ${fd}`);
  });

  void it('λ T scales the per-t VLB term: 0.1 for T = 100', () => {
    const s100 = makeSchedule({ ...defaultScheduleConfig, numTrainTimesteps: 100 });
    const t100 = [0, 3, 40, 99];
    const out = concat([noise, full(SHAPE, -0.3, f64)], 1);
    const input = { x0, noise, timesteps: t100, modelOutput: out };
    const r = trainingLossTerms(s100, input, { varianceType: 'learned_range' });
    const vb = vals(r.vb!);
    assert.ok(
      vb.every((v) => v > 0),
      'every L_vlb term is positive',
    );
    assertRelClose(
      r.loss.itemSync(),
      mean([...vals(r.mse)].map((m, i) => m + 0.1 * vb[i]!)),
      1e-12,
    );
  });

  void it('runs in float32 and agrees with float64', () => {
    const meanPart = add(noise, mul(randn(SHAPE, { seed: 17, ...f64 }), 0.2));
    const out = concat([meanPart, full(SHAPE, 0.3, f64)], 1);
    const input = { x0, noise, timesteps: ts, modelOutput: out };
    const opts = {
      varianceType: 'learned_range',
      predictionType: 'v_prediction',
      snrGamma: 5,
    } as const;
    const want = trainingLoss(s, input, opts).itemSync();
    const f32 = (t: Tensor) => t.cast('float32');
    const got = trainingLoss(
      s,
      { x0: f32(x0), noise: f32(noise), timesteps: ts, modelOutput: f32(out) },
      opts,
    );
    assert.equal(got.dtype, 'float32', 'dtype');
    assertRelClose(got.itemSync(), want, 1e-5, 'f32 vs f64');
  });

  void it('min-SNR weights and per-sample weights apply to the hybrid loss too', () => {
    const out = concat([noise, full(SHAPE, 0.2, f64)], 1);
    const base = trainingLossTerms(
      s,
      { x0, noise, timesteps: ts, modelOutput: out },
      { varianceType: 'learned_range' },
    );
    const w = [2, 1, 0, 1];
    const weighted = trainingLoss(
      s,
      { x0, noise, timesteps: ts, modelOutput: out },
      { varianceType: 'learned_range', weights: w },
    );
    const vb = vals(base.vb!);
    assertRelClose(
      weighted.itemSync(),
      mean([...vb].map((v, i) => (vals(base.mse)[i]! + v) * w[i]!)),
      1e-12,
    );
  });
});
