/**
 * Micro-batches and data-parallel replicas: a step split into micro-batches whose gradients
 * accumulate in order gives the same weights bit for bit whether the parts run on this thread or
 * on a replica in a worker thread, for an unconditional, a class-conditional and a text-conditional
 * model (whose text encoder trains on this thread from the replica's ∂L/∂τ_θ(y)), an SR3 upscaler
 * and an inpainting model (whose replica gets the image joined to x_t); and the split is real (one
 * micro-batch gives other weights).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { microBatchRanges } from '../../src/diffusion/trainer/replica.js';
import { resolveTrainConfig, type TrainConfig, Trainer } from '../../src/diffusion/index.js';
import { TINY_TEXT_ENCODER, TINY_TEXT_UNET, TINY_UNET, trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-replica-');

/** The text-conditional runs' training settings (the text encoder trains with the U-Net). */
const TEXT_TRAIN = {
  textCond: true,
  maxTokens: 8,
  labelDropout: 0.3,
  textEncoder: TINY_TEXT_ENCODER,
};

function config(train: Partial<TrainConfig>): TrainConfig {
  return resolveTrainConfig(
    {
      model: train.textCond === true ? TINY_TEXT_UNET : TINY_UNET,
      scheduler: {},
      train: { data: 'mnist', steps: 3, batchSize: 6, lr: 1e-3, warmupSteps: 0, ...train },
    },
    fx.mnist8,
  );
}

/** Trains 3 steps with SUMI_CPU_THREADS set as given; the flat weights and the losses. */
async function run(
  train: Partial<TrainConfig>,
  threads: string,
): Promise<{ weights: Float32Array[]; losses: number[]; replicas: number }> {
  const saved = process.env.SUMI_CPU_THREADS;
  process.env.SUMI_CPU_THREADS = threads;
  const trainer = new Trainer(config(train), fx.mnist8);
  try {
    const losses: number[] = [];
    while (trainer.step < 3) losses.push((await trainer.trainStep()).loss);
    const modules = [trainer.model, ...trainer.condition.components.map((c) => c.module)];
    const weights = modules.flatMap((m) =>
      m.namedParameters().map(([, t]) => Float32Array.from(t.dataSync())),
    );
    return { weights, losses, replicas: trainer.replicaCount };
  } finally {
    await trainer.close();
    if (saved === undefined) delete process.env.SUMI_CPU_THREADS;
    else process.env.SUMI_CPU_THREADS = saved;
  }
}

function sameBits(a: Float32Array[], b: Float32Array[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i]!;
      const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
      const v = new Uint32Array(y.buffer, y.byteOffset, y.length);
      return u.length === v.length && u.every((w, j) => w === v[j]);
    })
  );
}

void describe('micro-batches and replicas', () => {
  void test('micro-batch rows: every row once, in order, sizes within one', () => {
    assert.deepEqual(microBatchRanges(6, 2), [
      [0, 3],
      [3, 6],
    ]);
    assert.deepEqual(microBatchRanges(7, 3), [
      [0, 2],
      [2, 4],
      [4, 7],
    ]);
    assert.deepEqual(microBatchRanges(1, 2), [[0, 1]]);
  });

  const kinds: [string, Partial<TrainConfig>][] = [
    ['unconditional', {}],
    ['class-conditional', { classCond: true }],
    ['text-conditional', TEXT_TRAIN],
    ['SR3 upscaler', { upscale: { factor: 2, noiseAugmentation: 0.1 } }],
    ['inpainting', { inpaint: { masks: ['rectangle', 'brush'] } }],
  ];
  for (const [kind, cond] of kinds) {
    void test(`${kind}: the same weights on one thread and with a replica`, async () => {
      const train = { microBatches: 2, ...cond };
      const alone = await run(train, '1');
      const replicated = await run(train, '2');
      assert.equal(alone.replicas, 0);
      assert.equal(replicated.replicas, 1, 'no replica started');
      assert.ok(sameBits(alone.weights, replicated.weights), 'weights differ');
      assert.deepEqual(replicated.losses, alone.losses);
      const whole = await run({ microBatches: 1, ...cond }, '1');
      assert.ok(!sameBits(whole.weights, alone.weights), 'one micro-batch gave the same bits');
    });
  }
});
