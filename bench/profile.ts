/**
 * Where a CPU training step of mnist-small goes (never a test):
 *
 *   npm run bench -- --profile [--steps N] [--batch B] [--micro-batches M] [--preset P]
 *
 * Runs N trainer steps (2 untimed first) on the CPU backend and prints the step time by phase
 * (batch and noise, forward + loss, backward, optimizer + EMA, the rest), the time inside each
 * backend op (by op, and for element-wise, reduction and copy ops by shape), and the garbage
 * collector's pauses. Ops are timed on the calling thread: with --micro-batches 2 (the default
 * of `sumi train` on the CPU) the replica's half of the work runs in a worker and is not in the
 * op table, so the default here is 1, which shows every op of the step.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';

import { loadDataset } from '../src/data/index.js';
import { resolveTrainConfig, Trainer } from '../src/diffusion/trainer/trainer.js';
import { cpuBackend, setDefaultBackend } from '../src/engine/index.js';
import type { Backend } from '../src/engine/index.js';
import { loadPreset } from '../src/cli/presets.js';

interface OpStat {
  calls: number;
  ms: number;
}

/** Wraps every method of the backend object with a timer keyed by op (and detail). */
function instrument(backend: Backend, stats: Map<string, OpStat>, on: { value: boolean }): void {
  const target = backend as unknown as Record<string, unknown>;
  const proto = Object.getPrototypeOf(backend) as object;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const desc = Object.getOwnPropertyDescriptor(proto, name);
    const f = desc?.value as unknown;
    if (name === 'constructor' || typeof f !== 'function') continue;
    const fn = f as (...a: unknown[]) => unknown;
    target[name] = (...args: unknown[]): unknown => {
      if (!on.value) return fn.apply(backend, args);
      const t = performance.now();
      const r = fn.apply(backend, args);
      const ms = performance.now() - t;
      let key = name;
      if (name === 'unary' || name === 'binary' || name === 'reduce') key += ` ${String(args[0])}`;
      const spec = args[args.length - 1] as { activation?: string } | undefined;
      if ((name === 'groupNorm' || name === 'groupNormBackward') && spec?.activation) {
        key += ` + ${spec.activation}`;
      }
      const s = stats.get(key) ?? { calls: 0, ms: 0 };
      s.calls++;
      s.ms += ms;
      stats.set(key, s);
      return r;
    };
  }
}

export async function profileTrainingStep(argv: readonly string[]): Promise<void> {
  const opt = (name: string, fallback: number): number => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  const steps = opt('--steps', 6);
  const batch = opt('--batch', 32);
  const micro = opt('--micro-batches', 1);
  const presetIdx = argv.indexOf('--preset');
  const presetName = presetIdx >= 0 ? argv[presetIdx + 1]! : 'mnist-small';
  const cpu = cpuBackend();
  setDefaultBackend(cpu);
  const stats = new Map<string, OpStat>();
  const on = { value: false };
  instrument(cpu, stats, on);
  let gcMs = 0;
  let gcCount = 0;
  const gc = new PerformanceObserver((list) => {
    if (!on.value) return;
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      gcCount++;
    }
  });
  gc.observe({ entryTypes: ['gc'] });

  const dataset = loadDataset('mnist');
  const preset = loadPreset(presetName);
  const config = resolveTrainConfig(
    {
      model: preset.model,
      scheduler: preset.scheduler ?? {},
      train: { ...preset.train, data: 'mnist', batchSize: batch, steps: 1000, microBatches: micro },
    },
    dataset,
  );
  const trainer = new Trainer(config, dataset);
  // Phases from the model's and optimizer's own calls: forward (denoise), backward is the rest
  // of the step up to the optimizer, optimizer + EMA.
  const phase = { forward: 0, optimizer: 0, total: 0 };
  const model = trainer.model as unknown as Record<string, (...a: unknown[]) => unknown>;
  const denoise = model.denoise!.bind(trainer.model);
  model.denoise = (...a: unknown[]) => {
    const t = performance.now();
    const r = denoise(...a);
    if (on.value) phase.forward += performance.now() - t;
    return r;
  };
  const optim = trainer.optimizer as unknown as Record<string, (...a: unknown[]) => unknown>;
  const optStep = optim.step!.bind(trainer.optimizer);
  optim.step = (...a: unknown[]) => {
    const t = performance.now();
    const r = optStep(...a);
    if (on.value) phase.optimizer += performance.now() - t;
    return r;
  };
  for (let s = 0; s < steps + 2; s++) {
    on.value = s >= 2;
    const t = performance.now();
    await trainer.trainStep();
    if (on.value) phase.total += performance.now() - t;
  }
  on.value = false;
  gc.disconnect();
  await trainer.close();

  const per = (ms: number): string => (ms / steps).toFixed(1).padStart(9);
  const opsMs = [...stats.values()].reduce((a, s) => a + s.ms, 0);
  console.log(
    `# ${presetName} training step on the CPU, batch ${batch}, micro-batches ${micro}, ` +
      `${steps} steps after 2 untimed (ms per step)`,
  );
  console.log(`step total            ${per(phase.total)}`);
  console.log(`  forward (+ loss)    ${per(phase.forward)}`);
  console.log(`  optimizer           ${per(phase.optimizer)}`);
  console.log(`  backward and rest   ${per(phase.total - phase.forward - phase.optimizer)}`);
  console.log(`  in backend ops      ${per(opsMs)}`);
  console.log(`  outside backend ops ${per(phase.total - opsMs)}`);
  console.log(`  GC pauses           ${per(gcMs)}  (${(gcCount / steps).toFixed(1)} per step)`);
  console.log('\n| op | calls / step | ms / step | share of op time |');
  console.log('|---|---:|---:|---:|');
  for (const [k, s] of [...stats].sort((a, b) => b[1].ms - a[1].ms)) {
    if (s.ms / steps < 0.05) continue;
    const share = ((100 * s.ms) / opsMs).toFixed(1);
    console.log(`| ${k} | ${s.calls / steps} | ${(s.ms / steps).toFixed(1)} | ${share}% |`);
  }
}
