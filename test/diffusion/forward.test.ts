import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { randn, type Tensor, tensor } from '../../src/engine/index.js';
import { readSafetensors } from '../../src/nn/safetensors-fs.js';
import {
  addNoise,
  coefAt,
  getVelocity,
  posteriorMean,
  predictedEpsilon,
  predictedOriginalSample,
  type PredictionType,
} from '../../src/diffusion/forward.js';
import {
  defaultScheduleConfig,
  makeSchedule,
  type NoiseSchedule,
} from '../../src/diffusion/schedule.js';
import { maxAbsDiff, relL2 } from '../engine/testing.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, '../..', '../shared/fixtures/diffusers');

const f64 = { dtype: 'float64' } as const;
const SHAPE = [4, 2, 3, 3];
const PER = 2 * 3 * 3;

function vals(t: Tensor): Float64Array {
  return t.dataSync() as Float64Array;
}

/** out[i] = fn(x0[i], eps[i], t of the batch element of i). */
function direct(
  x0: Tensor,
  eps: Tensor,
  ts: readonly number[],
  fn: (x0: number, eps: number, t: number) => number,
): Float64Array {
  const a = vals(x0);
  const e = vals(eps);
  return a.map((v, i) => fn(v, e[i]!, ts[Math.floor(i / PER)]!));
}

const schedules: [string, NoiseSchedule][] = [
  ['linear', makeSchedule(defaultScheduleConfig)],
  ['cosine', makeSchedule({ ...defaultScheduleConfig, betaSchedule: 'squaredcos_cap_v2' })],
];
const TS = [0, 1, 500, 999];

void describe('q(x_t | x_0)', () => {
  for (const [name, s] of schedules) {
    void it(`${name}: addNoise and getVelocity against the formulas`, () => {
      const x0 = randn(SHAPE, { seed: 1, ...f64 });
      const eps = randn(SHAPE, { seed: 2, ...f64 });
      const xt = addNoise(s, x0, eps, TS);
      const v = getVelocity(s, x0, eps, TS);
      assert.equal(xt.dtype, 'float64');
      assert.deepEqual(xt.shape, SHAPE);
      const ab = s.alphasCumprod;
      const wantXt = direct(
        x0,
        eps,
        TS,
        (x, e, t) => Math.sqrt(ab[t]!) * x + Math.sqrt(1 - ab[t]!) * e,
      );
      const wantV = direct(
        x0,
        eps,
        TS,
        (x, e, t) => Math.sqrt(ab[t]!) * e - Math.sqrt(1 - ab[t]!) * x,
      );
      assert.ok(maxAbsDiff(vals(xt), wantXt) < 1e-15, 'x_t against the direct loop');
      assert.ok(maxAbsDiff(vals(v), wantV) < 1e-15, 'v against the direct loop');
      // At t = 0 x_t is almost x_0; at the end of the cosine schedule almost pure noise.
      const x0v = vals(x0);
      const first = vals(xt).subarray(0, PER);
      assert.ok(maxAbsDiff(first, x0v.subarray(0, PER)) < 0.05, 'x_t at t = 0 is almost x_0');
    });
  }

  for (const name of ['ddpm_linear_eps', 'ddpm_scaledlinear_eps', 'ddpm_cosine_v']) {
    void it(`${name}: add_noise and get_velocity match diffusers to 1e-12`, async () => {
      const f = await readSafetensors(resolve(FIXTURES, 'schedulers', `${name}.safetensors`));
      const get = (k: string) => f.tensors.get(k)!;
      const kind = name.includes('scaledlinear')
        ? { betaSchedule: 'scaled_linear' as const }
        : name.includes('cosine')
          ? { betaSchedule: 'squaredcos_cap_v2' as const }
          : {};
      const s = makeSchedule({ ...defaultScheduleConfig, ...kind });
      const x0 = tensor(get('add_noise/x0').data, get('add_noise/x0').shape, f64);
      const noise = tensor(get('add_noise/noise').data, get('add_noise/noise').shape, f64);
      for (const i of [0, 1]) {
        const ts = [...get(`add_noise/timesteps_${i}`).data];
        const out = addNoise(s, x0, noise, ts);
        const e = relL2(vals(out), get(`add_noise/out_${i}`).data);
        assert.ok(e < 1e-12, `add_noise ${i}: ${e}`);
        const vts = [...get(`velocity/timesteps_${i}`).data];
        const v = getVelocity(s, x0, noise, vts);
        const ev = relL2(vals(v), get(`velocity/out_${i}`).data);
        assert.ok(ev < 1e-12, `velocity ${i}: ${ev}`);
      }
    });
  }
});

void describe('ε / x0 / v conversions', () => {
  const s = schedules[1]![1];
  const types: PredictionType[] = ['epsilon', 'sample', 'v_prediction'];
  for (const type of types) {
    for (const coefKind of ['tensor', 'number'] as const) {
      void it(`${type} (${coefKind} coefficients): x̂_0 and ε̂ from the exact output round-trip`, () => {
        const x0 = randn(SHAPE, { seed: 3, ...f64 });
        const eps = randn(SHAPE, { seed: 4, ...f64 });
        // Number coefficients need one timestep for the whole batch.
        const ts = coefKind === 'number' ? [321, 321, 321, 321] : [3, 200, 640, 998];
        const xt = addNoise(s, x0, eps, ts);
        const out = type === 'epsilon' ? eps : type === 'sample' ? x0 : getVelocity(s, x0, eps, ts);
        const alpha =
          coefKind === 'number' ? s.sqrtAlphasCumprod[321]! : coefAt(s.sqrtAlphasCumprod, ts, xt);
        const sigma =
          coefKind === 'number'
            ? s.sqrtOneMinusAlphasCumprod[321]!
            : coefAt(s.sqrtOneMinusAlphasCumprod, ts, xt);
        const x0hat = predictedOriginalSample(type, out, xt, alpha, sigma);
        const epshat = predictedEpsilon(type, out, xt, alpha, sigma);
        // ε → x_0 divides by √ᾱ (0.016 at t = 998 of the cosine schedule): allow for that.
        assert.ok(
          maxAbsDiff(vals(x0hat), vals(x0)) < 1e-12,
          `${type} x0 ${maxAbsDiff(vals(x0hat), vals(x0))}`,
        );
        assert.ok(maxAbsDiff(vals(epshat), vals(eps)) < 1e-12, `${type} eps`);
        // And back: the output recomputed from x̂_0 and ε̂ by the definition of each type.
        const vBack = vals(x0hat).map((x, i) => {
          const t = ts[Math.floor(i / PER)]!;
          const [a, sg] = [s.sqrtAlphasCumprod[t]!, s.sqrtOneMinusAlphasCumprod[t]!];
          const e = vals(epshat)[i]!;
          return type === 'epsilon' ? e : type === 'sample' ? x : a * e - sg * x;
        });
        assert.ok(
          maxAbsDiff(vBack, vals(out)) < 1e-12,
          `${type}: v recovered from the model output`,
        );
      });
    }
  }

  void it('v relates x_0 and ε by a rotation: x_0 = α x_t − σ v, ε = σ x_t + α v', () => {
    const x0 = randn(SHAPE, { seed: 5, ...f64 });
    const eps = randn(SHAPE, { seed: 6, ...f64 });
    const ts = [10, 20, 30, 40];
    const xt = vals(addNoise(s, x0, eps, ts));
    const v = vals(getVelocity(s, x0, eps, ts));
    for (let i = 0; i < xt.length; i++) {
      const t = ts[Math.floor(i / PER)]!;
      const [a, sg] = [s.sqrtAlphasCumprod[t]!, s.sqrtOneMinusAlphasCumprod[t]!];
      assert.ok(
        Math.abs(a * xt[i]! - sg * v[i]! - vals(x0)[i]!) < 1e-14,
        `x_0 = √ᾱ·x_t − √(1−ᾱ)·v at ${i}`,
      );
      assert.ok(
        Math.abs(sg * xt[i]! + a * v[i]! - vals(eps)[i]!) < 1e-14,
        `ε = √(1−ᾱ)·x_t + √ᾱ·v at ${i}`,
      );
      assert.ok(Math.abs(a * a + sg * sg - 1) < 1e-15, `ᾱ + (1 − ᾱ) = 1 at t = ${t}`);
    }
  });

  void it('rejects an unknown prediction type', () => {
    const x = randn([1, 2], { seed: 1, ...f64 });
    assert.throws(() => predictedOriginalSample('x' as PredictionType, x, x, 1, 1), /unknown/);
    assert.throws(() => predictedEpsilon('x' as PredictionType, x, x, 1, 1), /unknown/);
  });
});

void describe('q(x_{t−1} | x_t, x_0)', () => {
  for (const [name, s] of schedules) {
    void it(`${name}: mean and variance equal the Bayes posterior of the two Gaussians`, () => {
      // q(x_{t−1}|x_0) = N(√ᾱ_{t−1} x_0, 1 − ᾱ_{t−1}), q(x_t|x_{t−1}) = N(√α_t x_{t−1}, β_t):
      // precision 1/(1 − ᾱ_{t−1}) + α_t/β_t; mean = var (√ᾱ_{t−1} x_0/(1 − ᾱ_{t−1}) + √α_t x_t/β_t).
      const x0 = randn(SHAPE, { seed: 7, ...f64 });
      const xt = randn(SHAPE, { seed: 8, ...f64 });
      const ts = [1, 2, 400, 998];
      const mean = vals(posteriorMean(s, x0, xt, ts));
      const xtv = vals(xt);
      for (let i = 0; i < mean.length; i++) {
        const t = ts[Math.floor(i / PER)]!;
        const prev = s.alphasCumprodPrev[t]!;
        const [al, be] = [s.alphas[t]!, s.betas[t]!];
        const prec = 1 / (1 - prev) + al / be;
        const want =
          ((Math.sqrt(prev) * vals(x0)[i]!) / (1 - prev) + (Math.sqrt(al) * xtv[i]!) / be) / prec;
        assert.ok(Math.abs(mean[i]! - want) < 1e-11 * (1 + Math.abs(want)), `mean at ${i}`);
        const vWant = 1 / prec;
        assert.ok(Math.abs(s.posteriorVariance[t]! - vWant) < 1e-10 * vWant, `variance at t=${t}`);
      }
    });

    void it(`${name}: the posterior marginalizes to q(x_{t−1} | x_0)`, () => {
      // ∫ q(x_{t−1}|x_t,x_0) q(x_t|x_0) dx_t = q(x_{t−1}|x_0):
      //   mean  coef1 + coef2 √ᾱ_t = √ᾱ_{t−1};  variance  β̃_t + coef2² (1 − ᾱ_t) = 1 − ᾱ_{t−1}.
      for (let t = 0; t < s.numTrainTimesteps; t++) {
        const c1 = s.posteriorMeanCoef1[t]!;
        const c2 = s.posteriorMeanCoef2[t]!;
        const prev = s.alphasCumprodPrev[t]!;
        // coef1 divides by 1 − ᾱ_t, which carries ~1e-13 relative rounding where ᾱ_t ≈ 1.
        assert.ok(
          Math.abs(c1 + c2 * s.sqrtAlphasCumprod[t]! - Math.sqrt(prev)) < 2e-12,
          `mean t=${t}`,
        );
        const v = s.posteriorVariance[t]! + c2 * c2 * (1 - s.alphasCumprod[t]!);
        assert.ok(Math.abs(v - (1 - prev)) < 1e-14, `variance t=${t}`);
      }
      // On tensors: with x_t at its conditional mean the posterior mean is √ᾱ_{t−1} x_0.
      const x0 = randn(SHAPE, { seed: 9, ...f64 });
      const ts = [0, 5, 600, 999];
      const zeros = vals(x0).map(() => 0);
      const xt = addNoise(s, x0, tensor(zeros, SHAPE, f64), ts);
      const m = vals(posteriorMean(s, x0, xt, ts));
      const want = direct(x0, x0, ts, (x, _e, t) => Math.sqrt(s.alphasCumprodPrev[t]!) * x);
      assert.ok(maxAbsDiff(m, want) < 1e-11, 'posterior mean with ε = 0 against the direct loop');
    });
  }

  void it('at t = 0 the posterior mean is x_0 itself', () => {
    const s = schedules[0]![1];
    assert.ok(
      Math.abs(s.posteriorMeanCoef1[0]! - 1) < 1e-12,
      `coef1 at t = 0: ${s.posteriorMeanCoef1[0]}`,
    );
    assert.equal(s.posteriorMeanCoef2[0], 0);
  });
});

void describe('coefAt', () => {
  const s = makeSchedule({ ...defaultScheduleConfig, numTrainTimesteps: 10 });
  const x = randn([3, 2, 2], { seed: 1, ...f64 });
  void it('gathers one coefficient per batch element shaped to broadcast', () => {
    const c = coefAt(s.betas, [0, 9, 4], x);
    assert.deepEqual(c.shape, [3, 1, 1]);
    assert.equal(c.dtype, 'float64');
    assert.deepEqual([...vals(c)], [s.betas[0], s.betas[9], s.betas[4]]);
  });
  void it('rejects bad timesteps', () => {
    assert.throws(() => coefAt(s.betas, [0, 1], x), /2 timesteps for a batch of 3/);
    assert.throws(() => coefAt(s.betas, [0, 1, 10], x), /outside/);
    assert.throws(() => coefAt(s.betas, [0, 1, -1], x), /outside/);
    assert.throws(() => coefAt(s.betas, [0, 1, 1.5], x), /outside/);
  });
});
