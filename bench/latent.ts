/**
 * What latent diffusion saves a training step on the CPU backend (never run as tests):
 *
 *   npm run bench:latent [-- --iters N --batch B --size S]
 *
 * Two trainers of the same U-Net widths (`latent-small`: 32/64/64, attention at the two lower
 * levels) on the same emoji images at S×S (default 32): one on pixels (3×S×S), one on the latents
 * of a `vae-small` autoencoder (×4 downsampling: 4×(S/4)×(S/4); random weights, which cost what
 * trained ones do). Each takes full `Trainer.trainStep`s (batch, noise, forward, backward,
 * clipping, AdamW, EMA; the latent one draws z from its cache) in turn, so that load from other
 * processes falls on both alike; medians of N. The one-off encoding of the cache is timed too.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { loadPreset } from '../src/cli/presets.js';
import { setUpTraining, type Trainer } from '../src/diffusion/index.js';
import { cpuBackend, Generator, setDefaultBackend } from '../src/engine/index.js';
import { createModel, saveModel } from '../src/nn/models/index.js';

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
  const size = arg('--size', 32);
  setDefaultBackend(cpuBackend());
  const dir = await mkdtemp(join(tmpdir(), 'sumi-bench-latent-'));
  try {
    const vaeDir = join(dir, 'vae');
    await saveModel(
      createModel(loadPreset('vae-small').model, { generator: new Generator(0) }),
      vaeDir,
    );
    const unet = loadPreset('latent-small').model;
    const train = { data: 'emoji', imageSize: size, batchSize: batch, steps: 1000 };
    const pixel = await setUpTraining({
      outDir: join(dir, 'pixel'),
      resume: false,
      source: {
        label: 'pixel',
        config: { model: { ...unet, in_channels: 3 }, scheduler: {}, train: {} },
      },
      train,
      scheduler: {},
    });
    const t0 = performance.now();
    const latent = await setUpTraining({
      outDir: join(dir, 'latent'),
      resume: false,
      source: { label: 'latent-small', config: { model: unet, scheduler: {}, train: {} } },
      train,
      scheduler: {},
      vae: vaeDir,
    });
    const encodeS = (performance.now() - t0) / 1000;
    const runs: { name: string; trainer: Trainer; ms: number[] }[] = [
      { name: `pixel 3x${size}x${size}`, trainer: pixel.trainer, ms: [] },
      {
        name: `latent ${latent.trainer.config.latent!.shape.join('x')}`,
        trainer: latent.trainer,
        ms: [],
      },
    ];
    for (const r of runs) await r.trainer.trainStep(); // warm-up (and the replicas' start)
    for (let i = 0; i < iters; i++) {
      for (const r of runs) {
        const s = performance.now();
        await r.trainer.trainStep();
        r.ms.push(performance.now() - s);
      }
    }
    console.log(
      `emoji ${size}x${size}, batch ${batch}, U-Net widths 32/64/64, medians of ${iters} steps:`,
    );
    for (const r of runs) {
      const ms = median(r.ms);
      console.log(
        `  ${r.name.padEnd(18)} ${ms.toFixed(0).padStart(6)} ms/step  ${((batch * 1000) / ms).toFixed(1).padStart(6)} img/s  ` +
          `${r.trainer.numParameters().toLocaleString('en-US')} parameters`,
      );
    }
    const ratio = median(runs[0]!.ms) / median(runs[1]!.ms);
    console.log(
      `  latent step ${ratio.toFixed(1)}x cheaper; encoding the cache once: ${encodeS.toFixed(1)} s`,
    );
    for (const r of runs) {
      await r.trainer.close();
      r.trainer.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
