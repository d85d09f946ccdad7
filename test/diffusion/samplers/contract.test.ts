// The contract every scheduler passes, over every class and its main variants: schedule shape,
// step shapes, reset by setTimesteps, determinism with a seed, agreement of the ε / x_0 / v
// parameterizations, convergence with an exact denoiser, and no leaked buffers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cpuBackend, Generator, randn, type Tensor, tensor } from '../../../src/engine/index.js';
import type { PredictionType } from '../../../src/diffusion/forward.js';
import { createScheduler } from '../../../src/diffusion/samplers/registry.js';
import { sample } from '../../../src/diffusion/samplers/sample.js';
import type { Scheduler, StepOptions } from '../../../src/diffusion/samplers/common.js';
import { maxAbsDiff } from '../../engine/testing.js';

interface Case {
  name: string;
  scheduler: string;
  config?: Record<string, unknown>;
  step?: StepOptions;
  stochastic?: boolean;
  /** Final-sample tolerance against the data point with an exact denoiser. */
  exactTol?: number;
  /** Prediction types to compare with ε (default: x_0 and v). */
  types?: PredictionType[];
  /** False where an exact denoiser does not make the method exact (those two checks do not apply). */
  exact?: boolean;
}

const noClip = { clip_sample: false };
const cases: Case[] = [
  { name: 'ddpm', scheduler: 'ddpm', config: noClip, stochastic: true },
  {
    name: 'ddpm fixed_large',
    scheduler: 'ddpm',
    config: { ...noClip, variance_type: 'fixed_large' },
    stochastic: true,
  },
  {
    name: 'ddpm trailing',
    scheduler: 'ddpm',
    config: { ...noClip, timestep_spacing: 'trailing' },
    stochastic: true,
  },
  { name: 'ddim', scheduler: 'ddim', config: noClip },
  { name: 'ddim eta=1', scheduler: 'ddim', config: noClip, step: { eta: 1 }, stochastic: true },
  { name: 'ddim linspace', scheduler: 'ddim', config: { ...noClip, timestep_spacing: 'linspace' } },
  { name: 'euler', scheduler: 'euler' },
  { name: 'euler karras', scheduler: 'euler', config: { use_karras_sigmas: true } },
  {
    name: 'euler exponential leading',
    scheduler: 'euler',
    config: { use_exponential_sigmas: true, timestep_spacing: 'leading', steps_offset: 1 },
  },
  // churn noise is added after the model saw x at σ_i (diffusers' order), so x̂_0 is not exact
  { name: 'euler churn', scheduler: 'euler', step: { sChurn: 1 }, stochastic: true, exact: false },
  { name: 'euler-a', scheduler: 'euler-a', stochastic: true },
  { name: 'heun', scheduler: 'heun' },
  { name: 'heun karras', scheduler: 'heun', config: { use_karras_sigmas: true } },
  { name: 'lms', scheduler: 'lms' },
  {
    name: 'lms karras trailing',
    scheduler: 'lms',
    config: { use_karras_sigmas: true, timestep_spacing: 'trailing' },
  },
  // PNDM combines raw model outputs across timesteps before converting them to ε, so only its
  // ε-parameterization is exact (as in diffusers).
  {
    name: 'pndm plms',
    scheduler: 'pndm',
    config: { skip_prk_steps: true },
    exactTol: 0.05,
    types: ['epsilon'],
  },
  { name: 'pndm prk', scheduler: 'pndm', exactTol: 0.05, types: ['epsilon'] },
  { name: 'dpmpp-2m', scheduler: 'dpmpp-2m' },
  {
    name: 'dpmpp-2m heun karras',
    scheduler: 'dpmpp-2m',
    config: { solver_type: 'heun', use_karras_sigmas: true },
  },
  { name: 'dpmpp-1', scheduler: 'DPMSolverMultistepScheduler', config: { solver_order: 1 } },
  {
    name: 'dpmpp-3m',
    scheduler: 'DPMSolverMultistepScheduler',
    config: { solver_order: 3, lower_order_final: false },
  },
  { name: 'dpmpp lu lambdas', scheduler: 'dpmpp-2m', config: { use_lu_lambdas: true } },
  { name: 'dpmpp-2m-sde', scheduler: 'dpmpp-2m-sde', stochastic: true },
  {
    name: 'dpmpp-3m-sde',
    scheduler: 'DPMSolverMultistepScheduler',
    config: { algorithm_type: 'sde-dpmsolver++', solver_order: 3 },
    stochastic: true,
  },
  {
    name: 'dpm-solver 2',
    scheduler: 'DPMSolverMultistepScheduler',
    config: { algorithm_type: 'dpmsolver', final_sigmas_type: 'sigma_min' },
    exactTol: 0.05,
  },
  {
    name: 'dpm-solver 3',
    scheduler: 'DPMSolverMultistepScheduler',
    config: { algorithm_type: 'dpmsolver', solver_order: 3, final_sigmas_type: 'sigma_min' },
    exactTol: 0.05,
  },
  {
    name: 'sde-dpm-solver',
    scheduler: 'DPMSolverMultistepScheduler',
    config: { algorithm_type: 'sde-dpmsolver', final_sigmas_type: 'sigma_min' },
    stochastic: true,
    // the noise-prediction SDE solver is first order in its noise; 10 steps land far off
    exact: false,
  },
  { name: 'unipc', scheduler: 'unipc' },
  {
    name: 'unipc bh1 order 3',
    scheduler: 'unipc',
    config: { solver_type: 'bh1', solver_order: 3 },
  },
  {
    name: 'unipc noise-pred karras',
    scheduler: 'unipc',
    config: { predict_x0: false, use_karras_sigmas: true, final_sigmas_type: 'sigma_min' },
    exactTol: 0.05,
  },
  {
    name: 'unipc order 1 trailing',
    scheduler: 'unipc',
    config: { solver_order: 1, timestep_spacing: 'trailing' },
  },
];

const SHAPE = [2, 3, 4, 4];
const C = 0.25; // the data distribution is a point mass at C

/**
 * The exact denoiser for data δ_C, answering in the scheduler's parameterization. α_t, σ_t of
 * the model input come from the schedule: σ at the current step for schedulers with sigmas, ᾱ[t]
 * for the others.
 */
function exactModel(s: Scheduler, type: PredictionType): (x: Tensor, t: number) => Tensor {
  let call = 0;
  return (x, t) => {
    let a: number;
    if (s.sigmas !== null) {
      const sigma = s.sigmas[call]!;
      a = 1 / (1 + sigma * sigma);
    } else {
      a = s.alphasCumprod[t]!;
    }
    call++;
    const sa = Math.sqrt(a);
    const sb = Math.sqrt(1 - a);
    const eps = x.sub(sa * C).div(sb);
    if (type === 'epsilon') return eps;
    if (type === 'sample') return x.mul(0).add(C);
    return eps.mul(sa).sub(sb * C);
  };
}

function make(c: Case, type: PredictionType = 'epsilon'): Scheduler {
  return createScheduler(c.scheduler, { ...c.config, prediction_type: type });
}

function run(c: Case, type: PredictionType, n: number, seed = 1): Float64Array {
  const s = make(c, type);
  const xT = randn(SHAPE, { seed: 7, dtype: 'float64' });
  const out = sample(s, exactModel(s, type), xT, {
    numInferenceSteps: n,
    generator: new Generator(seed),
    stepOptions: c.step,
  });
  const v = Float64Array.from(out.dataSync());
  out.dispose();
  xT.dispose();
  return v;
}

for (const c of cases) {
  void describe(`scheduler contract: ${c.name}`, () => {
    void it('has a non-increasing schedule of the expected length', () => {
      const s = make(c);
      for (const n of [1, 7, 10]) {
        if (n === 1 && c.name === 'pndm prk') continue; // PRK needs at least 4 steps
        s.setTimesteps(n);
        const ts = Array.from(s.timesteps);
        assert.ok(ts.length >= n, `${ts.length} timesteps for n = ${n}`);
        for (let i = 1; i < ts.length; i++) {
          assert.ok(ts[i]! <= ts[i - 1]!, `n = ${n}: t[${i}] = ${ts[i]} after ${ts[i - 1]}`);
        }
        const bad = ts.filter((t) => !(t >= 0 && t <= 1000));
        assert.deepEqual(bad, [], `n = ${n}: timesteps outside [0, 1000]`);
        if (s.sigmas !== null) {
          const sig = Array.from(s.sigmas);
          assert.equal(sig.length, ts.length + 1, `n = ${n}: ${sig.length} sigmas`);
          for (let i = 1; i < sig.length; i++) {
            assert.ok(sig[i]! <= sig[i - 1]!, `n = ${n}: σ[${i}] = ${sig[i]} after ${sig[i - 1]}`);
          }
        }
        assert.ok(s.initNoiseSigma > 0, `initNoiseSigma ${s.initNoiseSigma}`);
      }
    });

    void it('returns samples of the input shape and dtype', () => {
      const s = make(c);
      s.setTimesteps(5);
      const x = randn(SHAPE, { seed: 3, dtype: 'float64' });
      const t = s.timesteps[0]!;
      const inp = s.scaleModelInput(x, t);
      assert.deepEqual(inp.shape, SHAPE);
      const r = s.step(inp.mul(0.1), t, x, { ...c.step, generator: new Generator(0) });
      assert.deepEqual(r.prevSample.shape, SHAPE);
      assert.equal(r.prevSample.dtype, 'float64');
      if (r.predOriginalSample !== null) assert.deepEqual(r.predOriginalSample.shape, SHAPE);
      const noisy = s.addNoise(x, x, [s.timesteps[0]!, s.timesteps[s.timesteps.length - 1]!]);
      assert.deepEqual(noisy.shape, SHAPE);
    });

    void it('gives the same result again after setTimesteps (the state is reset)', () => {
      const s = make(c);
      const model = (x: Tensor): Tensor => x.tanh().mul(0.3);
      const xT = randn(SHAPE, { seed: 5, dtype: 'float64' });
      const once = (): Float64Array => {
        const out = sample(s, model, xT, {
          numInferenceSteps: 6,
          generator: new Generator(11),
          stepOptions: c.step,
        });
        return Float64Array.from(out.dataSync());
      };
      assert.deepEqual(once(), once());
    });

    if (c.stochastic === true) {
      void it('is deterministic for a seed and varies with it', () => {
        const once = (seed: number): Float64Array => {
          const s = make(c);
          const xT = randn(SHAPE, { seed: 7, dtype: 'float64' });
          const out = sample(s, (x) => x.tanh().mul(0.3), xT, {
            numInferenceSteps: 8,
            generator: new Generator(seed),
            stepOptions: c.step,
          });
          return Float64Array.from(out.dataSync());
        };
        const a = once(1);
        assert.deepEqual(once(1), a);
        const d = maxAbsDiff(once(2), a);
        assert.ok(d > 1e-6, `seeds 1 and 2 differ by ${d}`);
      });
    }

    // Methods that an exact denoiser does not make exact (Euler with churn re-noises at every
    // step; the noise-prediction SDE solver is first order in its noise) do not have these two
    // properties, so the checks are not generated for them.
    if (c.exact !== false) {
      void it('agrees across ε, x_0 and v parameterizations of the same denoiser', () => {
        const eps = run(c, 'epsilon', 8);
        for (const type of c.types ?? (['sample', 'v_prediction'] as const)) {
          const other = run(c, type, 8);
          assert.ok(maxAbsDiff(other, eps) < 1e-9, `${type}: ${maxAbsDiff(other, eps)}`);
        }
      });

      void it('lands on the data with an exact denoiser', () => {
        const out = run(c, 'epsilon', 10);
        const err = maxAbsDiff(
          out,
          out.map(() => C),
        );
        assert.ok(err < (c.exactTol ?? 1e-9), `max |x − C| = ${err}`);
      });
    }

    void it('holds no buffers after a run but its own history', () => {
      const backend = cpuBackend();
      const s = make(c);
      const xT = tensor(new Float64Array(2 * 3 * 4 * 4).fill(0.5), SHAPE);
      const model = (x: Tensor): Tensor => x.mul(0.5);
      const opts = { numInferenceSteps: 6, generator: new Generator(3), stepOptions: c.step };
      sample(s, model, xT, opts).dispose();
      const before = backend.liveCount();
      for (let k = 0; k < 3; k++) sample(s, model, xT, opts).dispose();
      assert.equal(backend.liveCount(), before);
      xT.dispose();
    });
  });
}
