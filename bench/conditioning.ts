/**
 * What conditioning costs a training step on the CPU backend (never run as tests):
 *
 *   npm run bench:cond [-- --iters N --batch B]
 *
 * Three trainers of the same widths on MNIST — `mnist-small` (unconditional), `mnist-small-class`
 * (class embedding) and `mnist-text` (cross-attention at 7×7 to a 2-layer text encoder, trained
 * jointly) — take full `Trainer.trainStep`s (data, noise, forward, backward, clipping, AdamW,
 * EMA) in turn, so that load from other processes falls on all three alike; medians of N.
 */
import { performance } from 'node:perf_hooks';

import { loadPreset } from '../src/cli/presets.js';
import { loadDataset } from '../src/data/index.js';
import { resolveTrainConfig, Trainer } from '../src/diffusion/index.js';
import { cpuBackend, setDefaultBackend } from '../src/engine/index.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string, dflt: number): number =>
    argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt;
  const iters = arg('--iters', 7);
  const batch = arg('--batch', 32);
  setDefaultBackend(cpuBackend());
  const data = loadDataset('mnist');
  const make = (preset: string): Trainer => {
    const p = loadPreset(preset);
    const config = resolveTrainConfig(
      {
        model: p.model,
        scheduler: p.scheduler,
        train: { ...p.train, data: 'mnist', batchSize: batch, steps: 1000 },
      },
      data,
    );
    return new Trainer(config, data);
  };
  const runs = ['mnist-small', 'mnist-small-class', 'mnist-text'].map((name) => ({
    name,
    trainer: make(name),
    ms: [] as number[],
  }));
  for (const r of runs) await r.trainer.trainStep(); // warm-up
  for (let i = 0; i < iters; i++) {
    for (const r of runs) {
      const t = performance.now();
      await r.trainer.trainStep();
      r.ms.push(performance.now() - t);
    }
  }
  const base = median(runs[0]!.ms);
  for (const r of runs) {
    const m = median(r.ms);
    console.log(
      `${r.name.padEnd(18)} ${r.trainer.numParameters().toLocaleString('en-US').padStart(10)} parameters  ` +
        `step (batch ${batch}) ${m.toFixed(0)} ms  ×${(m / base).toFixed(2)} of unconditional`,
    );
    r.trainer.dispose();
  }
}

await main();
