/**
 * Resuming is exact: N steps in one go and N/2 steps, a checkpoint, a fresh trainer loaded from
 * it and the remaining N/2 give byte-identical weights, EMA weights and optimizer state. The
 * config exercises every random stream: data order and flips, timesteps, noise, class-label
 * dropout, and dropout layers; a learned-variance model (the hybrid loss) resumes the same way.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  findCheckpoint,
  readTrainerState,
  resolveTrainConfig,
  runTraining,
  type TrainConfig,
  Trainer,
} from '../../src/diffusion/index.js';
import { TINY_UNET, trainFixture } from './train-setup.js';

const MODEL = { ...TINY_UNET, dropout: 0.1 };

const N = 6;

const fx = trainFixture('sumi-resume-');

function config(
  train: Partial<TrainConfig> = {},
  scheduler: Record<string, unknown> = {},
): TrainConfig {
  return resolveTrainConfig(
    {
      model: MODEL,
      scheduler: { num_train_timesteps: 200, ...scheduler },
      train: {
        data: 'mnist',
        steps: N,
        batchSize: 4,
        lr: 2e-3,
        warmupSteps: 2,
        flip: true,
        classCond: true,
        labelDropout: 0.5,
        emaDecay: 0.99,
        maxGradNorm: 0.5,
        ...train,
      },
    },
    fx.mnist8,
  );
}

const FILES = [
  'unet/diffusion_pytorch_model.safetensors',
  'unet_ema/diffusion_pytorch_model.safetensors',
  'optimizer.safetensors',
];

async function checkpointBytes(out: string): Promise<Map<string, Buffer>> {
  const ckpt = await findCheckpoint(out);
  assert.ok(ckpt !== null, `a checkpoint in ${out}`);
  return new Map(
    await Promise.all(FILES.map(async (f) => [f, await readFile(join(ckpt, f))] as const)),
  );
}

async function train(out: string, cfg: TrainConfig, stopAt?: number): Promise<void> {
  const trainer = new Trainer(cfg, fx.mnist8);
  try {
    await runTraining(trainer, { outDir: out, stopAt, settings: { saveEvery: 0, sampleEvery: 0 } });
  } finally {
    trainer.dispose();
  }
}

/** A fresh trainer from the checkpoint in `out` (as `sumi train --resume` builds it). */
async function resume(out: string, steps?: number): Promise<void> {
  const ckpt = (await findCheckpoint(out))!;
  const state = await readTrainerState(ckpt);
  const trainer = new Trainer({ ...state.config, steps: steps ?? state.config.steps }, fx.mnist8);
  try {
    await trainer.loadCheckpoint(ckpt, state);
    await runTraining(trainer, { outDir: out, settings: { saveEvery: 0, sampleEvery: 0 } });
  } finally {
    trainer.dispose();
  }
}

function assertSame(a: Map<string, Buffer>, b: Map<string, Buffer>, what: string): void {
  for (const f of FILES) assert.ok(a.get(f)!.equals(b.get(f)!), `${what}: ${f} differs`);
}

void describe('resume', () => {
  let oneGo: Map<string, Buffer>;

  void test(`${N} steps in one go = ${N / 2} steps, checkpoint, resume to ${N}: identical bytes`, async () => {
    await train(join(fx.dir, 'one-go'), config());
    oneGo = await checkpointBytes(join(fx.dir, 'one-go'));

    const split = join(fx.dir, 'split');
    await train(split, config(), N / 2);
    const half = await checkpointBytes(split);
    assert.equal((await readTrainerState((await findCheckpoint(split))!)).step, N / 2);
    await resume(split);
    const state = await readTrainerState((await findCheckpoint(split))!);
    assert.equal(state.step, N);
    assert.equal(state.ema?.optimizationStep, N);
    assertSame(oneGo, await checkpointBytes(split), 'resumed run');
    // The comparison has teeth: the half-way weights differ from the final ones.
    assert.ok(!half.get(FILES[0]!)!.equals(oneGo.get(FILES[0]!)!), 'weights change after step 3');
  });

  void test('another seed gives other weights (the streams depend on the seed)', async () => {
    const other = join(fx.dir, 'seed1');
    await train(other, config({ seed: 1 }));
    const bytes = await checkpointBytes(other);
    for (const f of FILES) assert.ok(!bytes.get(f)!.equals(oneGo.get(f)!), `${f} should differ`);
  });

  void test('a learned variance (L_hybrid, 2C outputs) resumes to identical bytes too', async () => {
    const lv = config({}, { variance_type: 'learned_range' });
    assert.equal(lv.model.out_channels, 2, 'mean and variance channels');
    const a = join(fx.dir, 'lv-one-go');
    await train(a, lv);
    const b = join(fx.dir, 'lv-split');
    await train(b, lv, N / 2);
    await resume(b);
    const bytes = await checkpointBytes(a);
    assertSame(bytes, await checkpointBytes(b), 'resumed learned-variance run');
    assert.ok(!bytes.get(FILES[0]!)!.equals(oneGo.get(FILES[0]!)!), 'not the fixed-variance run');
  });

  void test('constant lr: --steps N/2, then resume with --steps N is also identical', async () => {
    const constant = { lrSchedule: 'constant_with_warmup' as const };
    const a = join(fx.dir, 'const-one-go');
    await train(a, config(constant));
    const b = join(fx.dir, 'const-split');
    await train(b, config({ ...constant, steps: N / 2 }));
    await resume(b, N);
    assertSame(await checkpointBytes(a), await checkpointBytes(b), 'extended run');
  });
});
