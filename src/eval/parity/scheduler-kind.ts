/**
 * The scheduler fixture kind: a `<case>.json` with `scheduler_class` (diffusers' class name and its
 * resolved `config`) beside `<case>.safetensors`. Reruns every recorded sampling loop with the
 * fake model m(x, t) = 0.3 tanh(x) + 0.001 t and the recorded noise, and compares the training
 * schedule, the inference schedule, every per-step record, the final samples, add_noise /
 * get_velocity, and diffusers' own float32 ("native") results.
 */
import { add, keep, mul, type Tensor, tanh, tidy } from '../../engine/index.js';
import {
  createScheduler,
  sample,
  type Scheduler,
  type StepOptions,
} from '../../diffusion/index.js';
import { maxRel, maxRelL2PerStep, record, relL2 } from './compare.js';
import { FixtureTensors, joinAll, read } from './fixture-tensors.js';
import type { FixtureCandidate, FixtureKind, RecordResult, RunContext } from './kinds.js';

/** README tolerances: float64 records, and diffusers-as-shipped (float32 inside) records. */
export const F64_TOLERANCE = 1e-10;
export const NATIVE_TOLERANCE = 1e-5;

/**
 * The tolerance of a case's native/* records. diffusers' float32 run is itself `gap` away from
 * its float64 run (the fixture's `native.final_sample_rel_l2_vs_f64`); ours follows the float64
 * records (to ~1e-15 in float64), so it cannot come closer to the float32 result than about that
 * gap. Long σ ranges (a cosine schedule, few steps) push the gap past NATIVE_TOLERANCE, hence
 * max(NATIVE_TOLERANCE, 2 × gap), with a note saying so when the gap decides.
 */
export function nativeTolerance(gap: unknown): { tolerance: number; note?: string } {
  if (typeof gap !== 'number' || !Number.isFinite(gap) || gap < 0) {
    return { tolerance: NATIVE_TOLERANCE };
  }
  if (2 * gap <= NATIVE_TOLERANCE) return { tolerance: NATIVE_TOLERANCE };
  return {
    tolerance: 2 * gap,
    note: `2 × diffusers' float32-vs-float64 gap ${gap.toExponential(2)}`,
  };
}

/** The fixtures' stand-in network. */
export function fakeModel(x: Tensor, t: number): Tensor {
  return add(mul(tanh(x), 0.3), 0.001 * t);
}

interface LoopInfo {
  num_inference_steps: number;
  num_loop_steps: number;
  init_noise_sigma: number;
  noise_draws: number;
}

interface ForwardEntry {
  after_set_timesteps: number;
  /** Positions of the timesteps in the schedule. */
  timestep_indices?: number[];
}

interface SchedulerFixture {
  scheduler_class: string;
  config: Record<string, unknown>;
  step_kwargs?: Record<string, unknown>;
  loops: Record<string, LoopInfo>;
  add_noise?: ForwardEntry[];
  get_velocity?: ForwardEntry[];
  native?: { loop?: { num_inference_steps: number }; final_sample_rel_l2_vs_f64?: number };
}

/** diffusers `step()` keyword arguments → our step options. */
function stepOptionsFrom(kwargs: Record<string, unknown>): StepOptions {
  const map: Record<string, keyof StepOptions> = {
    eta: 'eta',
    use_clipped_model_output: 'useClippedModelOutput',
    order: 'order',
    s_churn: 'sChurn',
    s_tmin: 'sTmin',
    s_tmax: 'sTmax',
    s_noise: 'sNoise',
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kwargs)) {
    const name = map[k];
    if (name === undefined) throw new Error(`step() argument '${k}' is not supported`);
    out[name] = v;
  }
  return out;
}

export const schedulerFixtureKind: FixtureKind = {
  name: 'scheduler',
  detect: (c: FixtureCandidate) => typeof c.json['scheduler_class'] === 'string',

  async run(c: FixtureCandidate, ctx: RunContext): Promise<RecordResult[]> {
    const fx = c.json as unknown as SchedulerFixture;
    const T = await FixtureTensors.open(c, ctx);
    const tol = ctx.dtype === 'float64' ? F64_TOLERANCE : NATIVE_TOLERANCE;
    const make = (): Scheduler => createScheduler(fx.scheduler_class, fx.config);
    const stepKwargs = stepOptionsFrom(fx.step_kwargs ?? {});
    const out: RecordResult[] = [];

    const sched = make();
    out.push(record('betas', 'max-rel', maxRel(sched.betas, T.values('betas')), F64_TOLERANCE));
    out.push(
      record(
        'alphas_cumprod',
        'max-rel',
        maxRel(sched.alphasCumprod, T.values('alphas_cumprod')),
        F64_TOLERANCE,
      ),
    );

    const finals = new Map<number, Float64Array>();
    for (const [key, loop] of Object.entries(fx.loops)) {
      const n = loop.num_inference_steps;
      const s = make();
      s.setTimesteps(n);
      out.push(
        record(
          `${key}/timesteps`,
          'max-rel',
          maxRel(s.timesteps, T.values(`${key}/timesteps`)),
          F64_TOLERANCE,
        ),
      );
      if (T.has(`${key}/sigmas`)) {
        const e = s.sigmas === null ? Infinity : maxRel(s.sigmas, T.values(`${key}/sigmas`));
        out.push(record(`${key}/sigmas`, 'max-rel', e, F64_TOLERANCE));
      }
      out.push(
        record(
          `${key}/init_noise_sigma`,
          'max-rel',
          maxRel([s.initNoiseSigma], [loop.init_noise_sigma]),
          F64_TOLERANCE,
        ),
      );

      const xT = T.tensor(T.has(`${key}/x_T`) ? `${key}/x_T` : 'x_T');
      const initial = mul(xT, s.initNoiseSigma);
      out.push(
        record(
          `${key}/sample_init`,
          'rel-l2',
          relL2(await read(initial), T.values(`${key}/sample_init`)),
          tol,
        ),
      );
      initial.dispose();

      const pool = T.has(`${key}/noise`) ? `${key}/noise` : 'noise';
      let draws = 0;
      const stepOptions: StepOptions = {
        ...stepKwargs,
        noise: () => T.tensor(pool, draws++),
      };
      const keepIo = T.has(`${key}/prev_sample`);
      const io: Record<'model_input' | 'model_output' | 'prev_sample', Tensor[]> = {
        model_input: [],
        model_output: [],
        prev_sample: [],
      };
      const final = sample(s, fakeModel, xT, {
        numInferenceSteps: n,
        stepOptions,
        onStep: (info) => {
          if (!keepIo) return;
          io.model_input.push(keep(info.modelInput.alias()));
          io.model_output.push(keep(info.modelOutput.alias()));
          io.prev_sample.push(keep(info.sample.alias()));
        },
      });
      xT.dispose();
      for (const name of ['model_input', 'model_output', 'prev_sample'] as const) {
        const full = `${key}/${name}`;
        if (!T.has(full)) continue;
        const steps = T.entry(full).shape[0]!;
        const ours = joinAll(await Promise.all(io[name].map(read)));
        io[name].forEach((t) => t.dispose());
        const e =
          io[name].length === steps ? maxRelL2PerStep(ours, T.values(full), steps) : Infinity;
        out.push(record(full, 'rel-l2', e, tol));
      }
      const finalValues = await read(final);
      final.dispose();
      finals.set(n, finalValues);
      out.push(
        record(
          `${key}/final_sample`,
          'rel-l2',
          relL2(finalValues, T.values(`${key}/final_sample`)),
          tol,
        ),
      );
      out.push(record(`${key}/noise_draws`, 'count', Math.abs(draws - loop.noise_draws), 0));
    }

    const x0 = T.tensor('add_noise/x0');
    const eps = T.tensor('add_noise/noise');
    const forward = [
      ['add_noise', fx.add_noise ?? []],
      ['velocity', fx.get_velocity ?? []],
    ] as const;
    for (const [group, entries] of forward) {
      for (let j = 0; j < entries.length; j++) {
        const s = make();
        s.setTimesteps(entries[j]!.after_set_timesteps);
        // Take the timesteps from our schedule at the recorded positions: a Karras schedule's
        // fractional timesteps may differ from diffusers' in the last bit (libm's pow), and
        // diffusers looks timesteps up by exact value. The values themselves are checked above.
        const idx = entries[j]!.timestep_indices;
        const ts =
          idx === undefined ? T.values(`${group}/timesteps_${j}`) : idx.map((i) => s.timesteps[i]!);
        const name = `${group}/out_${j}`;
        let e = Infinity;
        if (group === 'add_noise' || s.getVelocity !== undefined) {
          const r = tidy(() =>
            group === 'add_noise' ? s.addNoise(x0, eps, ts) : s.getVelocity!(x0, eps, ts),
          );
          e = relL2(await read(r), T.values(name));
          r.dispose();
        }
        out.push(record(name, 'rel-l2', e, tol));
      }
    }
    x0.dispose();
    eps.dispose();

    // diffusers as shipped (float32 inside) against our run, at the case's own tolerance
    const nNative = fx.native?.loop?.num_inference_steps;
    if (nNative !== undefined) {
      const { tolerance: nativeTol, note } = nativeTolerance(fx.native?.final_sample_rel_l2_vs_f64);
      const nativeRecord = (
        name: string,
        metric: 'rel-l2' | 'max-rel',
        e: number,
      ): RecordResult => ({
        ...record(name, metric, e, nativeTol),
        ...(note !== undefined ? { toleranceNote: note } : {}),
      });
      const ours = finals.get(nNative);
      const native = `native/n${nNative}`;
      if (T.has(`${native}/final_sample`)) {
        const e = ours === undefined ? Infinity : relL2(ours, T.values(`${native}/final_sample`));
        out.push(nativeRecord(`${native}/final_sample`, 'rel-l2', e));
      }
      if (T.has('native/alphas_cumprod')) {
        const e = maxRel(sched.alphasCumprod, T.values('native/alphas_cumprod'));
        out.push(nativeRecord('native/alphas_cumprod', 'max-rel', e));
      }
      const s = make();
      s.setTimesteps(nNative);
      for (const what of ['timesteps', 'sigmas'] as const) {
        const name = `${native}/${what}`;
        if (!T.has(name)) continue;
        const ours2 = s[what];
        const e = ours2 === null ? Infinity : maxRel(ours2, T.values(name));
        out.push(nativeRecord(name, 'max-rel', e));
      }
    }
    return out;
  },
};
