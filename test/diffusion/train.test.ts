/**
 * The trainer learns, and stops cleanly when training diverges: a tiny U-Net on 8×8 MNIST must
 * cut its averaged loss by a stated factor within 80 steps on the CPU backend; a NaN in the loss
 * (or in the weights about to be saved) stops the run with a message naming the checkpoint kept.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  findCheckpoint,
  NonFiniteError,
  readTrainerState,
  resolveTrainConfig,
  runTraining,
  type TrainConfig,
  Trainer,
} from '../../src/diffusion/index.js';
import { full, noGrad } from '../../src/engine/index.js';
import { loadTensors } from '../../src/nn/index.js';
import { TINY_UNET, trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-train-');

function tinyConfig(
  train: Partial<TrainConfig>,
  scheduler: Record<string, unknown> = {},
): TrainConfig {
  return resolveTrainConfig(
    { model: TINY_UNET, scheduler, train: { data: 'mnist', ...train } },
    fx.mnist8,
  );
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

void describe('trainer', () => {
  void test('the averaged ε-loss falls by 2.5x within 80 steps (tiny U-Net, 8x8 MNIST, CPU)', async () => {
    const trainer = new Trainer(
      tinyConfig({ steps: 80, batchSize: 16, lr: 3e-3, warmupSteps: 5, emaDecay: null }),
      fx.mnist8,
    );
    const losses: number[] = [];
    while (trainer.step < 80) losses.push((await trainer.trainStep()).loss);
    trainer.dispose();
    const first = mean(losses.slice(0, 10));
    const last = mean(losses.slice(-20));
    // At initialization the ε-loss is about 1 (the output is unrelated to the unit-variance ε).
    assert.ok(first > 0.5, `first 10 steps average ${first.toFixed(4)}`);
    assert.ok(
      last < first / 2.5,
      `average loss: first 10 steps ${first.toFixed(4)}, last 20 ${last.toFixed(4)}`,
    );
  });

  void test('v-prediction with min-SNR weighting trains (loss falls)', async () => {
    const trainer = new Trainer(
      tinyConfig(
        { steps: 30, batchSize: 8, lr: 3e-3, warmupSteps: 2, snrGamma: 5 },
        { prediction_type: 'v_prediction', beta_schedule: 'squaredcos_cap_v2' },
      ),
      fx.mnist8,
    );
    assert.equal(trainer.predictionType, 'v_prediction');
    const losses: number[] = [];
    while (trainer.step < 30) losses.push((await trainer.trainStep()).loss);
    trainer.dispose();
    assert.ok(mean(losses.slice(-10)) < mean(losses.slice(0, 5)), losses.join(', '));
  });
});

void describe('non-finite values stop training', () => {
  async function poisonedRun(name: string, poisonAfter: number) {
    const out = join(fx.dir, name);
    const trainer = new Trainer(tinyConfig({ steps: 10, batchSize: 4, lr: 1e-3 }), fx.mnist8);
    let err: unknown = null;
    try {
      await runTraining(trainer, {
        outDir: out,
        settings: { saveEvery: 2, sampleEvery: 0, logEvery: 1 },
        afterStep: (t, stats) => {
          if (stats.step === poisonAfter) {
            // A diverged update: one weight becomes NaN.
            const w = t.model.parameters().at(-1)!;
            w.assign(noGrad(() => full(w.shape, NaN)));
          }
        },
      });
    } catch (e) {
      err = e;
    } finally {
      trainer.dispose();
    }
    return { out, err };
  }

  void test('a NaN loss stops with a clear message and keeps the last good checkpoint', async () => {
    const { out, err } = await poisonedRun('nan-loss', 3);
    assert.ok(err instanceof NonFiniteError, String(err));
    assert.match(
      err.message,
      /^training stopped: the loss is NaN at step 4; the last good checkpoint \(step 2\) is kept in .*checkpoint$/,
    );
    const ckpt = await findCheckpoint(out);
    assert.ok(ckpt !== null, 'a checkpoint is kept');
    assert.equal((await readTrainerState(ckpt)).step, 2);
    const weights = await loadTensors(join(ckpt, 'unet', 'diffusion_pytorch_model.safetensors'));
    for (const [name, t] of weights) {
      assert.ok(t.dataSync().every(Number.isFinite), `${name} is finite`);
      t.dispose();
    }
    // The metrics log has the steps before the failure, nothing after.
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { step: number }).step),
      [1, 2, 3],
    );
  });

  void test('NaN weights are never saved: the save fails and the previous checkpoint stays', async () => {
    const { out, err } = await poisonedRun('nan-save', 4);
    assert.ok(err instanceof NonFiniteError, String(err));
    assert.match(err.message, /the weight 'conv_out\.bias' is NaN/);
    assert.match(err.message, /the last good checkpoint \(step 2\)/);
    assert.equal((await readTrainerState((await findCheckpoint(out))!)).step, 2);
  });

  void test('a huge learning rate diverges and is caught before an update', async () => {
    const trainer = new Trainer(
      tinyConfig({ steps: 50, batchSize: 4, lr: 1e30, warmupSteps: 0, maxGradNorm: null }),
      fx.mnist8,
    );
    await assert.rejects(async () => {
      while (trainer.step < 50) await trainer.trainStep();
    }, /^NonFiniteError: the (loss|gradient norm) is (NaN|Infinity|-Infinity) at step \d+$/);
    trainer.dispose();
  });
});
