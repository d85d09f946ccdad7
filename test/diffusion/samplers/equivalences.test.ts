// Identities between samplers that the math guarantees, checked to rounding: each one ties a
// step formula to another, independently written one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, randn, type Tensor, tensor } from '../../../src/engine/index.js';
import type { Scheduler, StepOptions } from '../../../src/diffusion/samplers/common.js';
import { createScheduler } from '../../../src/diffusion/samplers/registry.js';
import { sample } from '../../../src/diffusion/samplers/sample.js';
import { maxAbs, maxAbsDiff } from '../../engine/testing.js';

const SHAPE = [2, 2, 3, 3];
const model = (x: Tensor, t: number): Tensor =>
  x
    .tanh()
    .mul(0.3)
    .add(0.0005 * t);

function run(
  s: Scheduler,
  n: number,
  opts: { stepOptions?: StepOptions; xScale?: number } = {},
): Float64Array {
  const xT = randn(SHAPE, { seed: 21, dtype: 'float64' }).mul(opts.xScale ?? 1);
  const out = sample(s, model, xT, {
    numInferenceSteps: n,
    generator: new Generator(4),
    stepOptions: opts.stepOptions,
  });
  return Float64Array.from(out.dataSync());
}

/** max |a − b| relative to the largest |b|. */
const maxRelDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number =>
  maxAbsDiff(a, b) / maxAbs(b);

void describe('sampler identities', () => {
  void it('DDIM with η = 1 is DDPM with the posterior variance (same noise)', () => {
    const cfg = { clip_sample: false, beta_schedule: 'scaled_linear' };
    const ddim = run(createScheduler('ddim', cfg), 10, { stepOptions: { eta: 1 } });
    const ddpm = run(createScheduler('ddpm', cfg), 10);
    // DDPM draws no noise at t = 0 and DDIM's σ is 0 there: the same draws line up
    assert.ok(maxRelDiff(ddim, ddpm) < 1e-12, `${maxRelDiff(ddim, ddpm)}`);
  });

  void it('DPM-Solver++ of order 1 is DDIM (η = 0)', () => {
    const cfg = { timestep_spacing: 'trailing', beta_schedule: 'squaredcos_cap_v2' };
    // n divides T, so DDIM's t − T/n is the next trailing timestep
    const dpm = run(
      createScheduler('DPMSolverMultistepScheduler', { ...cfg, solver_order: 1 }),
      10,
    );
    const ddim = run(createScheduler('ddim', { ...cfg, clip_sample: false }), 10);
    assert.ok(maxRelDiff(dpm, ddim) < 1e-11, `${maxRelDiff(dpm, ddim)}`);
  });

  void it('Euler on integer timesteps is DDIM (η = 0) in the VE scaling', () => {
    const cfg = { timestep_spacing: 'trailing', prediction_type: 'v_prediction' };
    const euler = createScheduler('euler', cfg);
    // DDIM starts at x_T (VP), Euler at σ_max x_T (VE = VP/α): start Euler at x_T/(σ_max α)
    const a = euler.alphasCumprod[999]!;
    const e = run(euler, 8, { xScale: 1 / Math.sqrt(1 - a) });
    const d = run(createScheduler('ddim', { ...cfg, clip_sample: false }), 8);
    assert.ok(maxRelDiff(e, d) < 1e-10, `${maxRelDiff(e, d)}`);
  });

  void it('LMS of order 1 is Euler', () => {
    const lms = run(createScheduler('lms'), 9, { stepOptions: { order: 1 } });
    const euler = run(createScheduler('euler'), 9);
    assert.ok(maxRelDiff(lms, euler) < 1e-12, `${maxRelDiff(lms, euler)}`);
  });

  void it('UniPC of order 1 without corrector is DPM-Solver++ of order 1', () => {
    const steps = Array.from({ length: 10 }, (_, i) => i);
    const uni = run(createScheduler('unipc', { solver_order: 1, disable_corrector: steps }), 10);
    const dpm = run(createScheduler('DPMSolverMultistepScheduler', { solver_order: 1 }), 10);
    assert.ok(maxRelDiff(uni, dpm) < 1e-12, `${maxRelDiff(uni, dpm)}`);
  });

  void it('DDPM learned_range at v = ±1 is fixed_large / fixed_small; learned at β̃ is fixed_small', () => {
    const x = randn(SHAPE, { seed: 1, dtype: 'float64' });
    const eps = randn(SHAPE, { seed: 2, dtype: 'float64' });
    const noise = randn(SHAPE, { seed: 3, dtype: 'float64' });
    const stepWith = (variance: string, out: Tensor): Float64Array => {
      const s = createScheduler('ddpm', { variance_type: variance, clip_sample: false });
      s.setTimesteps(10);
      return Float64Array.from(s.step(out, 500, x, { noise }).prevSample.dataSync());
    };
    // the model output: channels [ε (C), variance (C)] per batch element
    const split = (v: number): Tensor => {
      const B = SHAPE[0]!;
      const per = eps.size / B;
      const e = eps.dataSync();
      const data = new Float64Array(2 * eps.size);
      for (let b = 0; b < B; b++) {
        data.set(e.subarray(b * per, (b + 1) * per), 2 * b * per);
        data.fill(v, (2 * b + 1) * per, (2 * b + 2) * per);
      }
      return tensor(data, [B, 2 * SHAPE[1]!, ...SHAPE.slice(2)]);
    };
    const small = stepWith('fixed_small', eps);
    const large = stepWith('fixed_large', eps);
    assert.ok(
      maxRelDiff(stepWith('learned_range', split(1)), large) < 1e-12,
      'learned_range at v = 1 is fixed_large',
    );
    assert.ok(
      maxRelDiff(stepWith('learned_range', split(-1)), small) < 1e-12,
      'learned_range at v = −1 is fixed_small',
    );
    const s = createScheduler('ddpm');
    const acp = s.alphasCumprod;
    const tilde = ((1 - acp[400]!) / (1 - acp[500]!)) * (1 - acp[500]! / acp[400]!);
    assert.ok(
      maxRelDiff(stepWith('learned', split(tilde)), small) < 1e-12,
      'learned with log β̃ is fixed_small',
    );
    assert.ok(maxRelDiff(small, large) > 1e-6, 'fixed_small and fixed_large differ');
  });
});
