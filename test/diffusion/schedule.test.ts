import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { readSafetensors } from '../../src/nn/safetensors-fs.js';
import {
  type BetaSchedule,
  betasForAlphaBar,
  defaultScheduleConfig,
  linspace,
  makeBetas,
  makeSchedule,
  rescaleZeroTerminalSnr,
  type ScheduleConfig,
} from '../../src/diffusion/schedule.js';
import { assertClose } from '../engine/testing.js';

const here = dirname(fileURLToPath(import.meta.url));
// The repository root is two levels up; the fixtures sit beside it in ../shared.
const REPO_ROOT = resolve(here, '../..');
const FIXTURES = resolve(REPO_ROOT, '../shared/fixtures/diffusers');

function cfg(over: Partial<ScheduleConfig>): ScheduleConfig {
  return { ...defaultScheduleConfig, ...over };
}

/** |a_i − b_i| ≤ rel·|b_i| for every i (b_i = 0 compared absolutely). */
function assertRelEach(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, what: string) {
  assertClose(a, b, { bound: (i) => (b[i] === 0 ? rel : rel * Math.abs(b[i]!)) }, what);
}

function assertIncreasing(x: ArrayLike<number>, what: string, strict = true) {
  for (let i = 1; i < x.length; i++) {
    const ok = strict ? x[i]! > x[i - 1]! : x[i]! >= x[i - 1]!;
    assert.ok(ok, `${what} not increasing at ${i}: ${x[i - 1]} then ${x[i]}`);
  }
}

const cosineAlphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;

void describe('beta schedules', () => {
  void it('linear: β_i = β_start + i (β_end − β_start)/(T − 1), endpoints exact', () => {
    for (const T of [1000, 10, 7]) {
      const b = makeBetas(cfg({ numTrainTimesteps: T, betaStart: 1e-4, betaEnd: 0.02 }));
      assert.equal(b.length, T);
      assert.equal(b[0], 1e-4);
      assert.equal(b[T - 1], 0.02);
      const want = Array.from({ length: T }, (_, i) => 1e-4 + (i * (0.02 - 1e-4)) / (T - 1));
      assertRelEach(b, want, 1e-14, `linear T=${T}`);
      assertIncreasing(b, 'linear');
    }
  });

  void it('scaled_linear: √β is linear from √β_start to √β_end', () => {
    const T = 1000;
    const [s, e] = [0.00085, 0.012];
    const b = makeBetas(cfg({ betaSchedule: 'scaled_linear', betaStart: s, betaEnd: e }));
    assert.ok(
      Math.abs(b[0]! - s) <= 1e-18 && Math.abs(b[T - 1]! - e) <= 1e-17,
      `endpoints ${b[0]}, ${b[T - 1]}`,
    );
    const want = Array.from(
      { length: T },
      (_, i) => (Math.sqrt(s) + (i * (Math.sqrt(e) - Math.sqrt(s))) / (T - 1)) ** 2,
    );
    assertRelEach(b, want, 1e-14, 'scaled_linear');
    assertIncreasing(b, 'scaled_linear');
    // Second differences of √β vanish (√β is affine in i).
    const r = b.map(Math.sqrt);
    for (let i = 1; i < T - 1; i++) {
      assert.ok(Math.abs(r[i + 1]! - 2 * r[i]! + r[i - 1]!) < 1e-15, `√β curvature at ${i}`);
    }
  });

  void it('squaredcos_cap_v2: ᾱ_t = f((t+1)/T)/f(0) with f the cosine, last β capped at 0.999', () => {
    for (const T of [1000, 50]) {
      const s = makeSchedule(cfg({ numTrainTimesteps: T, betaSchedule: 'squaredcos_cap_v2' }));
      // The product of (1 − β) telescopes to f((t+1)/T)/f(0) wherever the cap is not hit.
      const want = Array.from(
        { length: T - 1 },
        (_, t) => cosineAlphaBar((t + 1) / T) / cosineAlphaBar(0),
      );
      assertRelEach(s.alphasCumprod.subarray(0, T - 1), want, 1e-12, `cosine ᾱ T=${T}`);
      assert.equal(s.betas[T - 1], 0.999, 'cap');
      assert.ok(
        s.betas.every((b) => b > 0 && b <= 0.999),
        'every β in (0, 0.999]',
      );
      assertIncreasing(s.betas, 'cosine betas');
      // First beta from the formula directly.
      const b0 = 1 - cosineAlphaBar(1 / T) / cosineAlphaBar(0);
      assert.ok(Math.abs(s.betas[0]! - b0) <= 1e-15 * b0, `β_0 = ${s.betas[0]}, want ${b0}`);
    }
  });

  void it('betasForAlphaBar caps every β at maxBeta', () => {
    const b = betasForAlphaBar(10, (t) => 1 - t, 0.3);
    // 1 − ᾱ((i+1)/T)/ᾱ(i/T) = 1/(T − i): capped at 0.3 from i = 7 on.
    const want = Array.from({ length: 10 }, (_, i) => Math.min(1 / (10 - i), 0.3));
    assertRelEach(b, want, 1e-14, 'capped betas');
  });

  void it('sigmoid: β = σ(x)(β_end − β_start) + β_start over x = linspace(−6, 6), symmetric', () => {
    const T = 1000;
    const [s, e] = [1e-4, 0.02];
    const b = makeBetas(cfg({ betaSchedule: 'sigmoid', betaStart: s, betaEnd: e }));
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    assert.ok(Math.abs(b[0]! - (s + (e - s) * sig(-6))) < 1e-17, `β_0 = ${b[0]}`);
    assert.ok(Math.abs(b[T - 1]! - (s + (e - s) * sig(6))) < 1e-17, `β_T = ${b[T - 1]}`);
    assertIncreasing(b, 'sigmoid');
    // σ(x) + σ(−x) = 1 and the grid is symmetric, so β_i + β_{T−1−i} = β_start + β_end.
    for (let i = 0; i < T; i++) {
      assert.ok(Math.abs(b[i]! + b[T - 1 - i]! - (s + e)) < 1e-16, `symmetry at ${i}`);
    }
  });

  void it('linspace is exact at both ends and symmetric (torch.linspace)', () => {
    const x = linspace(-6, 6, 1000);
    assert.equal(x[0], -6);
    assert.equal(x[999], 6);
    for (let i = 0; i < 1000; i++) assert.equal(x[i], -x[999 - i]!);
    assert.deepEqual([...linspace(2, 3, 1)], [2]);
    assert.equal(linspace(0, 1, 0).length, 0);
  });

  void it('trainedBetas override the schedule; bad inputs throw', () => {
    const b = makeBetas(cfg({ numTrainTimesteps: 3, trainedBetas: [0.1, 0.2, 0.3] }));
    assert.deepEqual([...b], [0.1, 0.2, 0.3]);
    assert.throws(
      () => makeBetas(cfg({ numTrainTimesteps: 4, trainedBetas: [0.1] })),
      /trained_betas/,
    );
    assert.throws(() => makeBetas(cfg({ numTrainTimesteps: 0 })), /positive integer/);
    assert.throws(() => makeBetas(cfg({ numTrainTimesteps: 2.5 })), /positive integer/);
    assert.throws(
      () => makeBetas(cfg({ betaSchedule: 'nope' as BetaSchedule })),
      /unknown beta_schedule/,
    );
  });
});

void describe('rescale to zero terminal SNR', () => {
  for (const betaSchedule of ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const) {
    void it(`${betaSchedule}: ᾱ_T = 0, ᾱ_0 kept, √ᾱ an affine map of the original`, () => {
      const over = {
        betaSchedule,
        ...(betaSchedule === 'scaled_linear' ? { betaStart: 0.00085, betaEnd: 0.012 } : {}),
      };
      const orig = makeSchedule(cfg(over));
      const res = makeSchedule(cfg({ ...over, rescaleBetasZeroSnr: true }));
      const T = orig.numTrainTimesteps;
      assert.ok(Math.abs(res.alphasCumprod[T - 1]!) < 1e-30, `ᾱ_T = ${res.alphasCumprod[T - 1]}`);
      assert.ok(Math.abs(res.betas[T - 1]! - 1) < 1e-15, 'β_T = 1');
      assert.ok(
        Math.abs(res.alphasCumprod[0]! - orig.alphasCumprod[0]!) <= 1e-15,
        `ᾱ_0 = ${res.alphasCumprod[0]}, was ${orig.alphasCumprod[0]}`,
      );
      // √ᾱ'_t = (√ᾱ_t − √ᾱ_T) √ᾱ_0 / (√ᾱ_0 − √ᾱ_T) (Lin et al. 2024, Algorithm 1).
      const [a0, aT] = [orig.sqrtAlphasCumprod[0]!, orig.sqrtAlphasCumprod[T - 1]!];
      const want = [...orig.sqrtAlphasCumprod].map((s) => ((s - aT) * a0) / (a0 - aT));
      for (let t = 0; t < T; t++) {
        assert.ok(Math.abs(res.sqrtAlphasCumprod[t]! - want[t]!) < 1e-14, `√ᾱ at ${t}`);
      }
      assert.ok(
        res.betas.every((b) => b >= 0 && b <= 1),
        'every β in [0, 1]',
      );
    });
  }

  void it('the direct function matches the config flag', () => {
    const b = makeBetas(cfg({}));
    assert.deepEqual(
      [...rescaleZeroTerminalSnr(b)],
      [...makeBetas(cfg({ rescaleBetasZeroSnr: true }))],
    );
  });
});

void describe('NoiseSchedule derived arrays', () => {
  for (const betaSchedule of ['linear', 'squaredcos_cap_v2', 'sigmoid'] as const) {
    void it(`${betaSchedule}: every array against its defining formula`, () => {
      const T = 200;
      const s = makeSchedule(cfg({ numTrainTimesteps: T, betaSchedule }));
      assert.equal(s.numTrainTimesteps, T);
      let acp = 1;
      for (let t = 0; t < T; t++) {
        const b = s.betas[t]!;
        const prev = acp;
        acp *= 1 - b;
        const close = (got: number, want: number, what: string) =>
          assertClose(got, want, { rtol: 1e-13, atol: 1e-300 }, `${what}[${t}]`);
        close(s.alphas[t]!, 1 - b, 'alphas');
        close(s.alphasCumprod[t]!, acp, 'alphasCumprod');
        close(s.alphasCumprodPrev[t]!, prev, 'alphasCumprodPrev');
        close(s.sqrtAlphasCumprod[t]!, Math.sqrt(acp), 'sqrtAlphasCumprod');
        close(s.sqrtOneMinusAlphasCumprod[t]!, Math.sqrt(1 - acp), 'sqrtOneMinusAlphasCumprod');
        const pv = (b * (1 - prev)) / (1 - acp);
        close(s.posteriorVariance[t]!, pv, 'posteriorVariance');
        close(s.posteriorMeanCoef1[t]!, (b * Math.sqrt(prev)) / (1 - acp), 'coef1');
        close(s.posteriorMeanCoef2[t]!, ((1 - prev) * Math.sqrt(1 - b)) / (1 - acp), 'coef2');
        // β̃_t = 1 / (1/(1 − ᾱ_{t−1}) + α_t/β_t): the precision form of the same variance.
        // (1 − ᾱ_{t−1} is small at first, so both forms carry ~1e-12 relative rounding.)
        if (t > 0) {
          const precisionForm = 1 / (1 / (1 - prev) + (1 - b) / b);
          const err = Math.abs(s.posteriorVariance[t]! - precisionForm) / precisionForm;
          assert.ok(err < 1e-10, `β̃ precision form at ${t}: ${err}`);
        }
        const clippedWant = Math.log(t === 0 ? s.posteriorVariance[1]! : pv);
        close(s.posteriorLogVarianceClipped[t]!, clippedWant, 'posteriorLogVarianceClipped');
      }
      assert.equal(s.posteriorVariance[0], 0, 'β̃_0 = 0');
      assert.equal(s.alphasCumprodPrev[0], 1);
      // β̃_t ≤ β_t: the posterior is narrower than one forward step.
      for (let t = 0; t < T; t++)
        assert.ok(s.posteriorVariance[t]! <= s.betas[t]!, `β̃ ≤ β at ${t}`);
      assertIncreasing(
        s.alphasCumprod.map((a) => -a),
        'ᾱ decreasing',
      );
    });
  }

  void it('accepts explicit betas', () => {
    const s = makeSchedule(Float64Array.from([0.1, 0.5]));
    assert.ok(Math.abs(s.alphasCumprod[1]! - 0.45) < 1e-16, `ᾱ_1 = ${s.alphasCumprod[1]}`);
    assert.ok(
      Math.abs(s.posteriorVariance[1]! - (0.5 * 0.1) / 0.55) < 1e-16,
      `β̃_1 = ${s.posteriorVariance[1]}`,
    );
  });
});

void describe('diffusers fixtures', () => {
  for (const name of ['ddpm_linear_eps', 'ddpm_scaledlinear_eps', 'ddpm_cosine_v']) {
    void it(`${name}: betas and alphas_cumprod to 1e-12 relative`, async () => {
      const meta = JSON.parse(
        await readFile(resolve(FIXTURES, 'schedulers', `${name}.json`), 'utf8'),
      ) as { constructor_kwargs: Record<string, unknown> };
      const kw = meta.constructor_kwargs;
      // diffusers' DDPMScheduler defaults where the fixture does not override them.
      const c: ScheduleConfig = {
        numTrainTimesteps: (kw.num_train_timesteps as number | undefined) ?? 1000,
        betaSchedule: (kw.beta_schedule as BetaSchedule | undefined) ?? 'linear',
        betaStart: (kw.beta_start as number | undefined) ?? 0.0001,
        betaEnd: (kw.beta_end as number | undefined) ?? 0.02,
      };
      const s = makeSchedule(c);
      const f = await readSafetensors(resolve(FIXTURES, 'schedulers', `${name}.safetensors`));
      const betas = f.tensors.get('betas')!;
      const acp = f.tensors.get('alphas_cumprod')!;
      assert.equal(betas.dtype, 'F64');
      assertRelEach(s.betas, betas.data, 1e-12, `${name} betas`);
      assertRelEach(s.alphasCumprod, acp.data, 1e-12, `${name} alphas_cumprod`);
    });
  }
});
