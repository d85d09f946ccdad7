import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  add,
  concat,
  cpuBackend,
  full,
  Generator,
  mul,
  randn,
  sub,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { addNoise, posteriorMean, type PredictionType } from '../../src/diffusion/forward.js';
import {
  defaultScheduleConfig,
  makeSchedule,
  type NoiseSchedule,
} from '../../src/diffusion/schedule.js';
import {
  discretizedGaussianLogLikelihood,
  fixedLogVariance,
  gaussianLogLikelihood,
  modelDistribution,
  type ModelVarType,
  nllBitsPerDim,
  normalKl,
  priorBpd,
  splitLearnedVariance,
  standardNormalCdf,
  vbTermBpd,
  type VlbModel,
  vlbTerms,
} from '../../src/diffusion/vlb.js';

const f64 = { dtype: 'float64' } as const;
const LN2 = Math.LN2;

function vals(t: Tensor): Float64Array {
  return t.dataSync() as Float64Array;
}

function t64(data: number[] | Float64Array, shape?: number[]): Tensor {
  return tensor(Float64Array.from(data), shape ?? [data.length], f64);
}

function meanOf(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

function stdErr(a: ArrayLike<number>): number {
  const m = meanOf(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - m) ** 2;
  return Math.sqrt(s / (a.length - 1) / a.length);
}

/** erf by its Maclaurin series (the test's own, for |x| < 3). */
function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** Linear-scaled schedule of improved DDPM for any T: β from 1e-4·1000/T to 0.02·1000/T. */
function linearSchedule(T: number, zeroSnr = false): NoiseSchedule {
  const scale = 1000 / T;
  return makeSchedule({
    ...defaultScheduleConfig,
    numTrainTimesteps: T,
    betaStart: 1e-4 * scale,
    betaEnd: 0.02 * scale,
    rescaleBetasZeroSnr: zeroSnr,
  });
}

void describe('normalKl', () => {
  const closed = (m1: number, lv1: number, m2: number, lv2: number) =>
    0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + (m1 - m2) ** 2 * Math.exp(-lv2));

  void it('matches the closed form elementwise, with tensor or number log-variances', () => {
    const m1 = randn([50], { seed: 1, ...f64 });
    const m2 = randn([50], { seed: 2, ...f64 });
    const lv1 = randn([50], { seed: 3, ...f64 });
    const lv2 = randn([50], { seed: 4, ...f64 });
    const kl = vals(normalKl(m1, lv1, m2, lv2));
    const klNum = vals(normalKl(m1, -0.7, m2, 1.3));
    for (let i = 0; i < 50; i++) {
      const [a, b, c, d] = [vals(m1)[i]!, vals(lv1)[i]!, vals(m2)[i]!, vals(lv2)[i]!];
      assert.ok(Math.abs(kl[i]! - closed(a, b, c, d)) < 1e-13, `element ${i}: ${kl[i]}`);
      assert.ok(
        Math.abs(klNum[i]! - closed(a, -0.7, c, 1.3)) < 1e-13,
        `numeric log-variances, element ${i}: ${klNum[i]}`,
      );
      assert.ok(kl[i]! >= 0, `KL ≥ 0 at ${i}: ${kl[i]}`);
    }
  });

  void it('is zero for equal Gaussians and ½ for unit variances one apart', () => {
    const m = randn([20], { seed: 5, ...f64 });
    const lv = randn([20], { seed: 6, ...f64 });
    assert.ok(
      vals(normalKl(m, lv, m, lv)).every((v) => v === 0),
      'KL of a distribution with itself is 0',
    );
    const kl = vals(normalKl(t64([0]), 0, t64([1]), 0))[0]!;
    assert.ok(Math.abs(kl - 0.5) < 1e-16, `KL(N(0, 1) ‖ N(1, 1)) = ${kl}`);
    // KL(N(0, σ1²) ‖ N(0, σ2²)) = ln(σ2/σ1) + σ1²/(2σ2²) − ½.
    const kv = vals(normalKl(t64([0]), Math.log(0.25), t64([0]), Math.log(4)))[0]!;
    assert.ok(
      Math.abs(kv - (Math.log(2 / 0.5) + 0.25 / 8 - 0.5)) < 1e-15,
      `KL(N(0, ¼) ‖ N(0, 4)) = ${kv}`,
    );
  });

  void it('agrees with ∫ p log(p/q) by quadrature', () => {
    for (const [m1, s1, m2, s2] of [
      [0.3, 0.7, -0.4, 1.6],
      [2, 0.2, 1.5, 0.5],
    ] as const) {
      const pdf = (x: number, m: number, s: number) =>
        Math.exp(-0.5 * ((x - m) / s) ** 2) / (s * Math.sqrt(2 * Math.PI));
      let integral = 0;
      const h = 1e-3;
      for (let x = m1 - 12 * s1; x < m1 + 12 * s1; x += h) {
        const p = pdf(x, m1, s1);
        if (p > 0) integral += p * Math.log(p / pdf(x, m2, s2)) * h;
      }
      const kl = vals(normalKl(t64([m1]), 2 * Math.log(s1), t64([m2]), 2 * Math.log(s2)))[0]!;
      assert.ok(Math.abs(kl - integral) < 1e-7, `${kl} vs ${integral}`);
    }
  });
});

void describe('standardNormalCdf', () => {
  // mpmath 1.3.0 `ncdf` at 40 digits.
  const table: [number, number][] = [
    [-37, 5.725571222524577e-300],
    [-30, 4.906713927148187e-198],
    [-20, 2.7536241186062337e-89],
    [-10, 7.619853024160525e-24],
    [-7, 1.279812543885835e-12],
    [-5, 2.866515718791939e-7],
    [-4, 0.000031671241833119924],
    [-3.5, 0.00023262907903552504],
    [-3, 0.0013498980316300946],
    [-2.999, 0.0013543365337271062],
    [-2, 0.02275013194817921],
    [-1, 0.15865525393145705],
    [-0.5, 0.3085375387259869],
    [0, 0.5],
    [0.3, 0.6179114221889527],
    [1, 0.8413447460685429],
    [1.96, 0.9750021048517795],
    [3, 0.9986501019683699],
    [5, 0.9999997133484281],
    [8, 0.9999999999999993],
  ];

  void it('relative error < 1.2e-7 in the tail, < 1e-12 for x ≥ −3 (mpmath values)', () => {
    const got = vals(standardNormalCdf(t64(table.map(([x]) => x))));
    table.forEach(([x, want], i) => {
      const rel = Math.abs(got[i]! - want) / want;
      assert.ok(rel < (x < -3 ? 1.2e-7 : 1e-12), `Φ(${x}) = ${got[i]}, want ${want} (rel ${rel})`);
    });
  });

  void it('is monotone and its gradient is the normal density', () => {
    const xs = Array.from({ length: 121 }, (_, i) => -9 + i * 0.1);
    const x = t64(xs).requireGrad();
    const y = standardNormalCdf(x);
    const yv = vals(y);
    for (let i = 1; i < xs.length; i++) assert.ok(yv[i]! >= yv[i - 1]!, `non-decreasing at ${i}`);
    y.sum().backward();
    const g = vals(x.grad!);
    xs.forEach((v, i) => {
      const pdf = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
      // The erfc fit's derivative is good to ~1e-6 relative; the erf branch is exact.
      assert.ok(Math.abs(g[i]! - pdf) <= 2e-6 * pdf + 1e-300, `φ(${v}): ${g[i]} vs ${pdf}`);
    });
  });
});

void describe('discretizedGaussianLogLikelihood', () => {
  const levels = Float64Array.from({ length: 256 }, (_, k) => -1 + (2 * k) / 255);

  void it('the 256 bins sum to 1 for many means and scales', () => {
    const x = t64(levels);
    for (const m of [-1.3, -1, -0.2, 0, 0.0039215686, 0.77, 1, 1.5]) {
      for (const sc of [1e-4, 3e-3, 0.05, 0.5, 3]) {
        const ll = vals(discretizedGaussianLogLikelihood(x, full([256], m, f64), Math.log(sc)));
        const total = ll.reduce((a, v) => a + Math.exp(v), 0);
        // 1e-12 floor on each empty bin adds at most 256e-12.
        assert.ok(Math.abs(total - 1) < 1e-9, `mean ${m} scale ${sc}: Σ = ${total}`);
        assert.ok(
          ll.every((v) => v <= 1e-15),
          `mean ${m} scale ${sc}: every log-likelihood ≤ 0`,
        );
      }
    }
  });

  void it('matches high-precision bin probabilities (mpmath), tails included', () => {
    // [x, mean, scale, log P] from mpmath at 40 digits.
    const cases: [number, number, number, number][] = [
      [0.3, 0.0, 0.05, -20.735736893777108],
      [-0.2, 0.1, 0.02, -113.19911017445317],
      [1.0, 0.9, 0.1, -1.781827077183074],
      [-1.0, -0.5, 0.2, -5.026475416015538],
      [0.5, 0.5, 1e-3, -0.00008797825427392531],
      [0.35, 0.0, 0.05, -27.22264571358948],
    ];
    const x = t64(cases.map((c) => c[0]));
    const m = t64(cases.map((c) => c[1]));
    const ls = t64(cases.map((c) => Math.log(c[2])));
    const ll = vals(discretizedGaussianLogLikelihood(x, m, ls, { minProb: 1e-300 }));
    cases.forEach(([, , , want], i) => {
      // 1.2e-7 relative on the tail probabilities is 1.2e-7 absolute on log P.
      assert.ok(Math.abs(ll[i]! - want) < 2e-7, `case ${i}: ${ll[i]} vs ${want}`);
    });
    // The default floor of 1e-12 caps the −113 case.
    const floored = vals(discretizedGaussianLogLikelihood(x, m, ls));
    assert.ok(Math.abs(floored[1]! - Math.log(1e-12)) < 1e-12, `floored: ${floored[1]}`);
  });

  void it('has finite gradients that match finite differences (f64)', () => {
    const xs = [-1, -0.5, 0.2, 1, 0.99];
    const x = t64(xs);
    const m0 = [-0.97, -0.4, 0.25, 0.8, 1.2];
    const l0 = [-3, -2, -4, -1.5, -2.5];
    const m = t64(m0).requireGrad();
    const l = t64(l0).requireGrad();
    discretizedGaussianLogLikelihood(x, m, l).sum().backward();
    const f = (mm: number[], ll: number[]) =>
      vals(discretizedGaussianLogLikelihood(x, t64(mm), t64(ll))).reduce((a, b) => a + b, 0);
    const h = 1e-6;
    for (let i = 0; i < xs.length; i++) {
      const mp = [...m0];
      const mn = [...m0];
      mp[i]! += h;
      mn[i]! -= h;
      const fdM = (f(mp, l0) - f(mn, l0)) / (2 * h);
      const lp = [...l0];
      const ln = [...l0];
      lp[i]! += h;
      ln[i]! -= h;
      const fdL = (f(m0, lp) - f(m0, ln)) / (2 * h);
      assert.ok(Math.abs(vals(m.grad!)[i]! - fdM) < 1e-4 * (1 + Math.abs(fdM)), `d/dmean ${i}`);
      assert.ok(Math.abs(vals(l.grad!)[i]! - fdL) < 1e-4 * (1 + Math.abs(fdL)), `d/dlogscale ${i}`);
    }
  });

  void it('the continuous log-likelihood is the Gaussian log-density', () => {
    const ll = vals(gaussianLogLikelihood(t64([0.3, -1]), t64([0.1, 0]), t64([Math.log(0.5), 0])));
    const want = (x: number, m: number, s: number) =>
      -0.5 * Math.log(2 * Math.PI * s * s) - ((x - m) * (x - m)) / (2 * s * s);
    assert.ok(Math.abs(ll[0]! - want(0.3, 0.1, 0.5)) < 1e-15, `ll[0] = ${ll[0]}`);
    assert.ok(Math.abs(ll[1]! - want(-1, 0, 1)) < 1e-15, `ll[1] = ${ll[1]}`);
  });
});

void describe('p_θ(x_{t−1} | x_t)', () => {
  const s = linearSchedule(100);
  const shape = [3, 2, 2, 2];
  const xt = randn(shape, { seed: 11, ...f64 });
  const out = randn(shape, { seed: 12, ...f64 });
  const ts = [0, 1, 70];

  void it('fixed variances: small = clipped β̃, large = β with β̃_1 at t = 0', () => {
    const small = fixedLogVariance(s, 'fixed_small');
    const large = fixedLogVariance(s, 'fixed_large');
    assert.equal(small[0], Math.log(s.posteriorVariance[1]!));
    assert.equal(small[5], Math.log(s.posteriorVariance[5]!));
    assert.equal(large[0], Math.log(s.posteriorVariance[1]!));
    assert.equal(large[5], Math.log(s.betas[5]!));
    const d = modelDistribution(s, out, xt, ts, { varianceType: 'fixed_large' });
    const lv = vals(d.logVariance);
    assert.deepEqual([...lv], [large[0], large[1], large[70]]);
  });

  for (const type of ['epsilon', 'sample', 'v_prediction'] as PredictionType[]) {
    void it(`${type}: mean is the posterior mean at x̂_0`, () => {
      const d = modelDistribution(s, out, xt, ts, { predictionType: type });
      const want = posteriorMean(s, d.predOriginalSample, xt, ts);
      assert.deepEqual([...vals(d.mean)], [...vals(want)]);
      const alpha = ts.map((t) => s.sqrtAlphasCumprod[t]!);
      const sigma = ts.map((t) => s.sqrtOneMinusAlphasCumprod[t]!);
      const x0 = vals(d.predOriginalSample);
      x0.forEach((v, i) => {
        const b = Math.floor(i / 8);
        const [o, x] = [vals(out)[i]!, vals(xt)[i]!];
        const want0 =
          type === 'epsilon'
            ? (x - sigma[b]! * o) / alpha[b]!
            : type === 'sample'
              ? o
              : alpha[b]! * x - sigma[b]! * o;
        assert.ok(
          Math.abs(v - want0) < 1e-12 * (1 + Math.abs(want0)),
          `sample ${b}: ${v} vs ${want0}`,
        );
      });
    });
  }

  void it('clipDenoised clamps x̂_0 to [−1, 1]', () => {
    const d = modelDistribution(s, mul(out, 10), xt, ts, {
      predictionType: 'sample',
      clipDenoised: true,
    });
    const x0 = vals(d.predOriginalSample);
    assert.ok(
      x0.every((v) => v >= -1 && v <= 1),
      'x̂_0 clipped to [−1, 1]',
    );
    assert.ok(x0.some((v) => v === 1) && x0.some((v) => v === -1), 'the clip reaches both ends');
  });

  void it('learned_range interpolates log β̃ (v = −1) to log β (v = 1) from the second C channels', () => {
    for (const v of [-1, 0, 0.4, 1]) {
      const varPart = full(shape, v, f64);
      const both = concat([out, varPart], 1);
      assert.deepEqual(both.shape, [3, 4, 2, 2]);
      const d = modelDistribution(s, both, xt, ts, { varianceType: 'learned_range' });
      const lv = vals(d.logVariance);
      const frac = (v + 1) / 2;
      lv.forEach((got, i) => {
        const t = ts[Math.floor(i / 8)]!;
        const want = frac * Math.log(s.betas[t]!) + (1 - frac) * s.posteriorLogVarianceClipped[t]!;
        assert.ok(Math.abs(got - want) < 1e-13, `v=${v} t=${t}`);
      });
      // The mean comes from the first C channels only.
      const plain = modelDistribution(s, out, xt, ts);
      assert.deepEqual([...vals(d.mean)], [...vals(plain.mean)]);
    }
  });

  void it('learned: the variance part is σ² (diffusers); a C-channel output is refused', () => {
    const lvPart = randn(shape, { seed: 13, ...f64 });
    const d = modelDistribution(s, concat([out, lvPart.exp()], 1), xt, ts, {
      varianceType: 'learned',
    });
    const lv = vals(d.logVariance);
    vals(lvPart).forEach((want, i) => assert.ok(Math.abs(lv[i]! - want) < 1e-15, `log σ² ${i}`));
    assert.throws(
      () => modelDistribution(s, out, xt, ts, { varianceType: 'learned' }),
      /4 channels/,
    );
    const [a, b] = splitLearnedVariance(concat([out, lvPart], 1), 2);
    assert.deepEqual([...vals(a)], [...vals(out)]);
    assert.deepEqual([...vals(b)], [...vals(lvPart)]);
  });
});

/**
 * Gaussian data x_0 ~ N(μ0, s0²) per dimension. Everything is jointly Gaussian, so
 * E[x_0 | x_t] = μ0 + k_t (x_t − a_t μ0) with k_t = a_t s0² / (a_t² s0² + σ_t²) and
 * Var(x_0 | x_t) = V_t = s0² σ_t² / (σ_t² + a_t² s0²)  (a_t = √ᾱ_t, σ_t² = 1 − ᾱ_t),
 * and the true reverse step is q(x_{t−1} | x_t) = N(c1 E[x_0|x_t] + c2 x_t, β̃_t + c1² V_t).
 */
const MU0 = 0.3;
const S0 = 0.5;

function denoiser(s: NoiseSchedule, t: number) {
  const a = s.sqrtAlphasCumprod[t]!;
  const sg2 = 1 - s.alphasCumprod[t]!;
  const k = (a * S0 * S0) / (a * a * S0 * S0 + sg2);
  const V = (S0 * S0 * sg2) / (sg2 + a * a * S0 * S0);
  return { a, sg: Math.sqrt(sg2), k, V };
}

type VarChoice = 'exact_learned' | 'exact_range' | 'fixed_small' | 'fixed_large';

/** log σ² of p(x_{t−1}|x_t) for each choice; the exact reverse variance for the first two. */
function modelLogVar(s: NoiseSchedule, t: number, choice: VarChoice): number {
  if (choice === 'fixed_small' || choice === 'fixed_large') return fixedLogVar(s, choice)[t]!;
  const c1 = s.posteriorMeanCoef1[t]!;
  return Math.log(s.posteriorVariance[t]! + c1 * c1 * denoiser(s, t).V);
}

const fixedCache = new WeakMap<NoiseSchedule, Record<string, Float64Array>>();
function fixedLogVar(s: NoiseSchedule, choice: 'fixed_small' | 'fixed_large'): Float64Array {
  let c = fixedCache.get(s);
  if (c === undefined) fixedCache.set(s, (c = {}));
  return (c[choice] ??= fixedLogVariance(s, choice));
}

/** The optimal denoiser as a model of the given parameterization and variance choice. */
function gaussianModel(s: NoiseSchedule, type: PredictionType, choice: VarChoice): VlbModel {
  return (xt, ts) => {
    const t = ts[0]!;
    const { a, sg, k } = denoiser(s, t);
    const x0hat = add(mul(xt, k), MU0 * (1 - k * a));
    const eps = mul(sub(xt, mul(x0hat, a)), 1 / sg);
    const out =
      type === 'sample' ? x0hat : type === 'epsilon' ? eps : sub(mul(eps, a), mul(x0hat, sg));
    if (choice === 'fixed_small' || choice === 'fixed_large') return out;
    const lv = modelLogVar(s, t, choice);
    let v = Math.exp(lv); // 'learned' takes σ² itself
    if (choice === 'exact_range') {
      const lo = s.posteriorLogVarianceClipped[t]!;
      const hi = Math.log(s.betas[t]!);
      v = (2 * (lv - lo)) / (hi - lo) - 1;
      assert.ok(v >= -1 - 1e-9 && v <= 1 + 1e-9, `optimal v = ${v} at t=${t} is outside [−1, 1]`);
    }
    return concat([out, full(xt.shape, v, f64)], 1);
  };
}

function varianceTypeOf(choice: VarChoice): ModelVarType {
  return choice === 'exact_learned'
    ? 'learned'
    : choice === 'exact_range'
      ? 'learned_range'
      : choice;
}

/**
 * E over the noise of each term of the bound for one scalar x_0, in nats (continuous decoder):
 * the KL terms use E[(x_0 − x̂_0)²] = (x_0 − μ0)²(1 − k a)² + k² σ², the decoder E[(x_0 − m)²]
 * with m = c1 x̂_0 + c2 x_t, the prior is KL(N(a_T x_0, σ_T²) ‖ N(0, 1)).
 */
function expectedTerms(s: NoiseSchedule, x0: number, choice: VarChoice): number[] {
  const T = s.numTrainTimesteps;
  const terms = new Array<number>(T + 1);
  for (let t = 0; t < T; t++) {
    const { a, sg, k } = denoiser(s, t);
    const c1 = s.posteriorMeanCoef1[t]!;
    const c2 = s.posteriorMeanCoef2[t]!;
    const lv = modelLogVar(s, t, choice);
    const pv = Math.exp(lv);
    if (t > 0) {
      const bt = s.posteriorVariance[t]!;
      const e2 = (x0 - MU0) ** 2 * (1 - k * a) ** 2 + k * k * sg * sg;
      terms[t] = 0.5 * (-1 + lv - Math.log(bt) + bt / pv + (c1 * c1 * e2) / pv);
    } else {
      const G = c1 * k + c2;
      const bias = x0 * (1 - G * a) - c1 * MU0 * (1 - k * a);
      terms[0] = 0.5 * Math.log(2 * Math.PI * pv) + (bias * bias + G * G * sg * sg) / (2 * pv);
    }
  }
  const aT = s.sqrtAlphasCumprod[T - 1]!;
  const vT = 1 - s.alphasCumprod[T - 1]!;
  terms[T] = 0.5 * (-1 - Math.log(vT) + vT + aT * aT * x0 * x0);
  return terms;
}

/** −log N(x_0; μ0, s0²): the true NLL of the data, nats. */
function trueNll(x0: number): number {
  return 0.5 * Math.log(2 * Math.PI * S0 * S0) + (x0 - MU0) ** 2 / (2 * S0 * S0);
}

/** −log p_θ(x_0) of the model's own marginal: the linear-Gaussian chain run from N(0, 1). */
function modelNll(s: NoiseSchedule, x0: number, choice: VarChoice): number {
  let m = 0;
  let v = 1;
  for (let t = s.numTrainTimesteps - 1; t >= 0; t--) {
    const { a, k } = denoiser(s, t);
    const c1 = s.posteriorMeanCoef1[t]!;
    const G = c1 * k + s.posteriorMeanCoef2[t]!;
    m = G * m + c1 * MU0 * (1 - k * a);
    v = G * G * v + Math.exp(modelLogVar(s, t, choice));
  }
  return 0.5 * Math.log(2 * Math.PI * v) + (x0 - m) ** 2 / (2 * v);
}

void describe('variational bound: Gaussian data, closed form', () => {
  const B = 32;
  const D = 256;
  const shape = [B, 1, 16, 16];
  const x0 = add(mul(randn(shape, { seed: 21, ...f64 }), S0), MU0);
  const x0v = vals(x0);
  const perSample = (fn: (x: number) => number): Float64Array =>
    Float64Array.from({ length: B }, (_, b) => {
      let acc = 0;
      for (let d = 0; d < D; d++) acc += fn(x0v[b * D + d]!);
      return acc / D / LN2;
    });

  /**
   * The terms vlbTerms must produce for the same noise (the same generator draws, t = T−1 … 0),
   * recomputed element by element with scalar formulas: terms[t][b] in bits/dim.
   */
  const replicate = (s: NoiseSchedule, choice: VarChoice, seed: number): Float64Array[] => {
    const T = s.numTrainTimesteps;
    const gen = new Generator(seed);
    const out = new Array<Float64Array>(T);
    for (let t = T - 1; t >= 0; t--) {
      const eps = vals(randn(shape, { generator: gen, ...f64 }));
      const { a, sg, k } = denoiser(s, t);
      const [c1, c2] = [s.posteriorMeanCoef1[t]!, s.posteriorMeanCoef2[t]!];
      const lv = modelLogVar(s, t, choice);
      const lvTrue = s.posteriorLogVarianceClipped[t]!;
      out[t] = perSampleIdx((i) => {
        const x = x0v[i]!;
        const xt = a * x + sg * eps[i]!;
        const m = c1 * (MU0 * (1 - k * a) + k * xt) + c2 * xt;
        if (t === 0)
          return 0.5 * Math.log(2 * Math.PI) + 0.5 * lv + (x - m) ** 2 / (2 * Math.exp(lv));
        const mTrue = c1 * x + c2 * xt;
        return 0.5 * (-1 + lv - lvTrue + Math.exp(lvTrue - lv) + (mTrue - m) ** 2 * Math.exp(-lv));
      });
    }
    return out;
  };
  const perSampleIdx = (fn: (i: number) => number): Float64Array =>
    Float64Array.from({ length: B }, (_, b) => {
      let acc = 0;
      for (let d = 0; d < D; d++) acc += fn(b * D + d);
      return acc / D / LN2;
    });
  const assertTermsEqual = (got: Float64Array[], want: Float64Array[], what: string) => {
    for (let t = 0; t < want.length; t++) {
      for (let b = 0; b < B; b++) {
        const [g, w] = [got[t]![b]!, want[t]![b]!];
        assert.ok(
          Math.abs(g - w) < 1e-9 * (1 + Math.abs(w)),
          `${what} t=${t} b=${b}: ${g} vs ${w}`,
        );
      }
    }
  };

  void it('exact reverse process + zero terminal SNR: E[bound] = −log q(x_0); MC within 4σ', async () => {
    const s = linearSchedule(100, true);
    assert.equal(s.alphasCumprod[99], 0);
    const nll = perSample(trueNll);
    // The identity in closed form, per sample: the ELBO gap KL(q(x_{1:T}|x_0) ‖ p(x_{1:T}|x_0)) is 0.
    const analytic = perSample((x) => expectedTerms(s, x, 'exact_range').reduce((a, b) => a + b));
    for (let b = 0; b < B; b++)
      assert.ok(
        Math.abs(analytic[b]! - nll[b]!) < 1e-10,
        `sample ${b}: ${analytic[b]} vs ${nll[b]}`,
      );
    const totals: Float64Array[] = [];
    for (const type of ['sample', 'v_prediction'] as PredictionType[]) {
      for (const choice of ['exact_range', 'exact_learned'] as VarChoice[]) {
        const r = await vlbTerms(s, gaussianModel(s, type, choice), x0, {
          predictionType: type,
          varianceType: varianceTypeOf(choice),
          decoder: 'continuous',
          seed: 7,
        });
        totals.push(r.total);
        assertTermsEqual(r.terms, replicate(s, choice, 7), `${type}/${choice}`);
        assert.ok(
          r.prior.every((p) => Math.abs(p) < 1e-15),
          'prior KL is 0 when ᾱ_T = 0',
        );
        const diff = r.total.map((v, b) => v - nll[b]!);
        const [m, se] = [meanOf(diff), stdErr(diff)];
        assert.ok(Math.abs(m) < 4 * se, `${type}/${choice}: bound − NLL = ${m} ± ${se} bits/dim`);
        assert.ok(se < 0.03, `standard error ${se}`);
        console.log(
          `  ${type}/${choice}: bound − NLL = ${m.toExponential(2)} ± ${se.toExponential(2)} bits/dim`,
        );
      }
    }
    // Same noise, same x̂_0: every parameterization and variance encoding gives the same bound.
    for (const tot of totals.slice(1)) {
      for (let b = 0; b < B; b++)
        assert.ok(
          Math.abs(tot[b]! - totals[0]![b]!) < 1e-9,
          `sample ${b}: ${tot[b]} vs ${totals[0]![b]}`,
        );
    }
    // ε-prediction has no x̂_0 at ᾱ_T = 0.
    await assert.rejects(
      vlbTerms(s, gaussianModel(s, 'epsilon', 'exact_learned'), x0, { varianceType: 'learned' }),
      /zero terminal SNR/,
    );
  });

  void it('exact reverse process, ε-prediction, ᾱ_T > 0: MC agrees with the closed form', async () => {
    const s = linearSchedule(100);
    const analytic = perSample((x) => expectedTerms(s, x, 'exact_learned').reduce((a, b) => a + b));
    const r = await vlbTerms(s, gaussianModel(s, 'epsilon', 'exact_learned'), x0, {
      varianceType: 'learned',
      decoder: 'continuous',
      seed: 9,
    });
    const diff = r.total.map((v, b) => v - analytic[b]!);
    assert.ok(Math.abs(meanOf(diff)) < 4 * stdErr(diff), `${meanOf(diff)} ± ${stdErr(diff)}`);
  });

  void it('each MC term agrees with its expectation (fixed_small, linear schedule, ᾱ_T > 0)', async () => {
    const s = linearSchedule(50);
    const r = await vlbTerms(s, gaussianModel(s, 'epsilon', 'fixed_small'), x0, {
      varianceType: 'fixed_small',
      decoder: 'continuous',
      seed: 3,
    });
    const T = s.numTrainTimesteps;
    const expected = Array.from({ length: B }, (_, b) => {
      const acc = new Array<number>(T + 1).fill(0);
      for (let d = 0; d < D; d++) {
        expectedTerms(s, x0v[b * D + d]!, 'fixed_small').forEach(
          (v, i) => (acc[i]! += v / D / LN2),
        );
      }
      return acc;
    });
    assertTermsEqual(r.terms, replicate(s, 'fixed_small', 3), 'fixed_small');
    // The prior term is deterministic.
    for (let b = 0; b < B; b++)
      assert.ok(
        Math.abs(r.prior[b]! - expected[b]![T]!) < 1e-12,
        `prior of sample ${b}: ${r.prior[b]}`,
      );
    for (let t = 0; t < T; t++) {
      const diff = r.terms[t]!.map((v, b) => v - expected[b]![t]!);
      const [m, se] = [meanOf(diff), stdErr(diff)];
      assert.ok(Math.abs(m) < 5 * se + 1e-12, `t=${t}: MC − expectation = ${m} ± ${se}`);
    }
  });

  for (const choice of ['fixed_small', 'fixed_large'] as const) {
    void it(`${choice}: E[bound] ≥ −log p_θ(x_0) per sample, ≥ H(q) over the data; MC agrees`, async () => {
      const s = linearSchedule(100);
      const bound = perSample((x) => expectedTerms(s, x, choice).reduce((a, b) => a + b));
      const nllModel = perSample((x) => modelNll(s, x, choice));
      for (let b = 0; b < B; b++) assert.ok(bound[b]! >= nllModel[b]!, `sample ${b}`);
      const r = await vlbTerms(s, gaussianModel(s, 'v_prediction', choice), x0, {
        predictionType: 'v_prediction',
        varianceType: choice,
        decoder: 'continuous',
        seed: 5,
      });
      const diff = r.total.map((v, b) => v - bound[b]!);
      assert.ok(Math.abs(meanOf(diff)) < 4 * stdErr(diff), `${meanOf(diff)} ± ${stdErr(diff)}`);
    });
  }

  void it('bound minus entropy over the data, in nats/dim (closed form, reported figures)', () => {
    // E_{x_0 ~ q}[bound] − H(q) = KL(q ‖ p_θ) + E[ELBO gap] ≥ 0 for every choice; exactly the prior
    // mismatch KL(q(x_T) ‖ N(0, 1)) for the exact reverse process.
    const H = 0.5 * Math.log(2 * Math.PI * Math.E * S0 * S0);
    // E over x_0 of a quadratic in x_0 by 3-point Gauss–Hermite quadrature (exact for degree ≤ 5).
    const nodes = [-Math.sqrt(3), 0, Math.sqrt(3)].map((z) => MU0 + S0 * z);
    const weights = [1 / 6, 2 / 3, 1 / 6];
    const expBound = (s: NoiseSchedule, c: VarChoice) =>
      nodes.reduce(
        (acc, x, i) => acc + weights[i]! * expectedTerms(s, x, c).reduce((a, b) => a + b),
        0,
      );
    const rows: string[] = [];
    for (const T of [50, 200, 1000, 4000]) {
      const s = linearSchedule(T);
      const z = linearSchedule(T, true);
      const gaps = (['fixed_small', 'fixed_large', 'exact_learned'] as VarChoice[]).map(
        (c) => expBound(s, c) - H,
      );
      const zeroGap = expBound(z, 'exact_learned') - H;
      // KL(q(x_T) ‖ N(0, 1)) with q(x_T) = N(√ᾱ_T μ0, ᾱ_T s0² + 1 − ᾱ_T).
      const aT = s.alphasCumprod[T - 1]!;
      const vT = aT * S0 * S0 + 1 - aT;
      const priorKl = 0.5 * (vT + aT * MU0 * MU0 - 1 - Math.log(vT));
      assert.ok(
        gaps.every((g) => g > -1e-12),
        `gaps ${gaps.join(', ')}`,
      );
      assert.ok(Math.abs(gaps[2]! - priorKl) < 1e-9, `exact reverse gap ${gaps[2]} vs ${priorKl}`);
      assert.ok(Math.abs(zeroGap) < 1e-9, `zero-SNR exact gap ${zeroGap}`);
      rows.push(
        `T=${T}: fixed_small ${gaps[0]!.toExponential(3)}, fixed_large ${gaps[1]!.toExponential(3)}, ` +
          `exact ${gaps[2]!.toExponential(3)} (prior KL ${priorKl.toExponential(3)}), ` +
          `exact+zero-SNR ${zeroGap.toExponential(2)}`,
      );
    }
    console.log(`  E[bound] − H(q), nats/dim, H = ${H.toFixed(6)}\n  ${rows.join('\n  ')}`);
  });
});

void describe('variational bound: the oracle model', () => {
  const s = linearSchedule(40);
  const B = 4;
  const shape = [B, 3, 4, 4];
  // Data on the 256 levels of [−1, 1].
  const u = vals(randn(shape, { seed: 31, ...f64 }));
  const x0 = tensor(
    u.map((v) => -1 + (2 * Math.min(255, Math.max(0, Math.round(127.5 + 60 * v)))) / 255),
    shape,
    f64,
  );
  const D = 48;

  for (const type of ['epsilon', 'sample', 'v_prediction'] as PredictionType[]) {
    void it(`${type}: KL terms vanish for t > 0; prior and decoder match their closed forms`, async () => {
      // A model that knows x_0 outputs exactly ε, x_0 or v: its mean is the true posterior mean
      // and, with fixed_small, its variance is β̃_t, so KL(q ‖ p_θ) = 0.
      const oracle: VlbModel = (xt, ts) => {
        const t = ts[0]!;
        const a = s.sqrtAlphasCumprod[t]!;
        const sg = s.sqrtOneMinusAlphasCumprod[t]!;
        const eps = mul(sub(xt, mul(x0, a)), 1 / sg);
        return type === 'epsilon'
          ? eps
          : type === 'sample'
            ? x0.alias()
            : sub(mul(eps, a), mul(x0, sg));
      };
      const live = cpuBackend().liveCount();
      const r = await vlbTerms(s, oracle, x0, { predictionType: type, seed: 1 });
      assert.equal(cpuBackend().liveCount(), live, 'vlbTerms frees its intermediates');
      for (let t = 1; t < s.numTrainTimesteps; t++) {
        assert.ok(
          r.terms[t]!.every((v) => Math.abs(v) < 1e-10),
          `t=${t}: ${r.terms[t]![0]}`,
        );
        assert.ok(
          r.x0Mse[t]!.every((v) => v < 1e-20),
          `t=${t}: x̂_0 MSE ${Math.max(...r.x0Mse[t]!)}`,
        );
      }
      const x0v = vals(x0);
      const T = s.numTrainTimesteps;
      const aT2 = s.alphasCumprod[T - 1]!;
      const sigma = Math.sqrt(s.posteriorVariance[1]!); // clipped variance at t = 0
      const h = 1 / 255;
      for (let b = 0; b < B; b++) {
        let prior = 0;
        let dec = 0;
        for (let d = 0; d < D; d++) {
          const x = x0v[b * D + d]!;
          prior += 0.5 * (-1 - Math.log(1 - aT2) + (1 - aT2) + aT2 * x * x);
          // The decoder mean is x_0 itself; P(bin) = Φ(h/σ) − Φ(−h/σ) = erf(h/(σ√2)) inside,
          // Φ(h/σ) = ½(1 + erf(h/(σ√2))) at the two end bins.
          const e = erfSeries(h / sigma / Math.SQRT2);
          dec -= Math.log(Math.abs(x) > 0.999 ? 0.5 * (1 + e) : e);
        }
        assert.ok(Math.abs(r.prior[b]! - prior / D / LN2) < 1e-13, 'prior');
        assert.ok(Math.abs(r.terms[0]![b]! - dec / D / LN2) < 1e-9, `decoder ${r.terms[0]![b]}`);
        const tot = r.prior[b]! + r.terms.reduce((acc, term) => acc + term[b]!, 0);
        assert.ok(
          Math.abs(r.total[b]! - tot) < 1e-12,
          `total of sample ${b}: ${r.total[b]} vs ${tot}`,
        );
      }
      const nll = await nllBitsPerDim(s, oracle, x0, { predictionType: type, seed: 1 });
      assert.ok(Math.abs(nll - meanOf(r.total)) < 1e-12, `NLL ${nll}`);
    });
  }

  void it('vbTermBpd picks the decoder where t = 0 and the KL elsewhere in one batch', () => {
    const noise = randn(shape, { seed: 2, ...f64 });
    const out = randn(shape, { seed: 3, ...f64 });
    const mixed = [0, 5, 0, 39];
    const xt = addNoise(s, x0, noise, mixed);
    const d = modelDistribution(s, out, xt, mixed);
    const both = vals(vbTermBpd(s, x0, xt, mixed, d));
    // Per-element recomputation with a one-element batch each.
    for (let b = 0; b < B; b++) {
      const pick = <T extends Tensor>(x: T) =>
        tensor(vals(x).slice(b * D, (b + 1) * D), [1, 3, 4, 4], f64);
      const ts = [mixed[b]!];
      const db = modelDistribution(s, pick(out), pick(xt), ts);
      const one = vals(vbTermBpd(s, pick(x0), pick(xt), ts, db))[0]!;
      assert.ok(Math.abs(both[b]! - one) < 1e-12, `element ${b}`);
    }
    assert.ok(both[0]! > 0 && both[1]! > 0, `both positive: ${both[0]}, ${both[1]}`);
  });

  void it('priorBpd is zero with zero terminal SNR and positive otherwise', () => {
    assert.ok(
      vals(priorBpd(linearSchedule(40, true), x0)).every((v) => Math.abs(v) < 1e-15),
      'zero terminal SNR: prior 0',
    );
    assert.ok(
      vals(priorBpd(s, x0)).every((v) => v > 0),
      'prior positive',
    );
  });
});
