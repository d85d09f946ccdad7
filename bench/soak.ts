/**
 * Training soak on the CPU backend (a bench script, never run as a test):
 *
 *   npm run bench:soak [-- --steps N --every K --batch B]
 *
 * N full `Trainer.trainStep`s (default 10,000: data, noise, forward, backward, gradient clipping,
 * AdamW, EMA) of a tiny U-Net (2 levels of 8 and 16 channels, ~40K parameters) on 8×8 MNIST.
 * Every K steps (default 500) it prints the live tensors, the live CPU storages and the bytes in
 * the CPU backend's pool of freed arrays. The baseline is taken after WARMUP steps: the optimizer
 * state is made in step 1, and the EMA shadow shares the parameters' storages until its first
 * update. If any count at any later report differs from the baseline, the script names the first
 * such report for each count and exits 1.
 */
import { performance } from 'node:perf_hooks';

import { loadDataset } from '../src/data/index.js';
import { resolveTrainConfig, Trainer } from '../src/diffusion/index.js';
import { type Backend, cpuBackend, setDefaultBackend, Tensor } from '../src/engine/index.js';
import { TINY_UNET } from '../src/eval/test-models.js';

const WARMUP = 10;

interface Counts {
  tensors: number;
  storages: number;
  pooledBytes: number;
}

function counts(backend: Backend): Counts {
  const pooled = 'pooledBytes' in backend ? backend.pooledBytes : undefined;
  return {
    tensors: Tensor.liveCount(),
    storages: backend.liveCount(),
    pooledBytes: typeof pooled === 'number' ? pooled : 0,
  };
}

function usage(message: string): never {
  console.error(`bench:soak: ${message}`);
  console.error('usage: npm run bench:soak [-- --steps N --every K --batch B]');
  process.exit(2);
}

function parseArgs(argv: readonly string[]): { steps: number; every: number; batch: number } {
  const opts = { steps: 10_000, every: 500, batch: 8 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!;
    const key = name.replace(/^--/, '');
    if (!(key in opts) || !name.startsWith('--')) usage(`unknown option ${name}`);
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v < 1)
      usage(`${name} takes a positive integer, got ${argv[i + 1]}`);
    opts[key as keyof typeof opts] = v;
  }
  return opts;
}

async function main(): Promise<void> {
  const { steps, every, batch } = parseArgs(process.argv.slice(2));
  if (steps <= WARMUP) usage(`--steps must be more than the ${WARMUP} warm-up steps`);
  const backend = cpuBackend();
  setDefaultBackend(backend);
  const data = loadDataset('mnist', { size: 8 });
  const config = resolveTrainConfig(
    {
      model: TINY_UNET,
      scheduler: {},
      train: { data: 'mnist', steps, batchSize: batch, lr: 1e-3, warmupSteps: 10 },
    },
    data,
  );
  const trainer = new Trainer(config, data);
  console.log(
    `soak: ${steps} steps, batch ${batch}, ${trainer.numParameters()} parameters, cpu backend`,
  );
  const t0 = performance.now();
  let loss = NaN;
  const show = (step: number, c: Counts): string =>
    `step ${String(step).padStart(6)}  tensors ${c.tensors}  storages ${c.storages}  ` +
    `pooled ${c.pooledBytes} B  loss ${loss.toFixed(4)}  ` +
    `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  for (let step = 1; step <= WARMUP; step++) loss = (await trainer.trainStep()).loss;
  const base = counts(backend);
  console.log(`${show(WARMUP, base)}  (baseline)`);
  const drift = new Map<keyof Counts, string>();
  for (let step = WARMUP + 1; step <= steps; step++) {
    loss = (await trainer.trainStep()).loss;
    if (step % every !== 0 && step !== steps) continue;
    const c = counts(backend);
    console.log(show(step, c));
    for (const k of ['tensors', 'storages', 'pooledBytes'] as const) {
      if (c[k] !== base[k] && !drift.has(k))
        drift.set(k, `${k} ${base[k]} -> ${c[k]} at step ${step}`);
    }
  }
  trainer.dispose();
  if (drift.size > 0) {
    console.error(`soak: not flat: ${[...drift.values()].join('; ')}`);
    process.exit(1);
  }
  console.log(`soak: flat from step ${WARMUP} to step ${steps}`);
}

await main();
