/**
 * The autoencoder trainer: config resolution and its errors, the held-out split, a tiny KL and a
 * tiny VQ autoencoder (EMA codebook, dead codes, discriminator) that train and resume bit for
 * bit, the saved folder (loadModel, scaling_factor), and a non-finite loss keeping the last good
 * checkpoint.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { type Dataset, subsetDataset } from '../../src/data/index.js';
import {
  findCheckpoint,
  imageHoldoutSplit,
  NonFiniteError,
  readVaeTrainerState,
  resolveVaeConfig,
  runLoop,
  type VaeHeldOut,
  type VaeStepStats,
  type VaeTrainConfig,
  VaeTrainer,
  type VaeRunSettings,
  loadAutoencoder,
} from '../../src/diffusion/index.js';
import { psnr } from '../../src/eval/index.js';
import { AutoencoderKL, loadModel, VQModel } from '../../src/nn/models/index.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-vae-');

const CODER = {
  block_out_channels: [8, 16],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  norm_num_groups: 4,
  latent_channels: 2,
};

let small: Dataset;
function images(): Dataset {
  small ??= subsetDataset(
    fx.mnist8,
    Array.from({ length: 120 }, (_, i) => i),
  );
  return small;
}

function config(kind: 'kl' | 'vq', train: Partial<VaeTrainConfig> = {}): VaeTrainConfig {
  return resolveVaeConfig(
    {
      model: kind === 'vq' ? { ...CODER, num_vq_embeddings: 16 } : CODER,
      train: {
        kind,
        data: 'mnist',
        steps: 6,
        batchSize: 8,
        lr: 2e-3,
        warmupSteps: 1,
        holdout: 0.1,
        scalingBatches: 2,
        flip: true,
        ...train,
      },
    },
    images(),
  );
}

const measure = (a: Float32Array, b: Float32Array): { psnr: number; ssim: null } => ({
  psnr: psnr(b, a, 2),
  ssim: null,
});

const RUN: VaeRunSettings = { saveEvery: 0, evalEvery: 0, logEvery: 2 };

async function train(
  cfg: VaeTrainConfig,
  out: string,
  stopAt?: number,
): Promise<{ trainer: VaeTrainer; steps: VaeStepStats[] }> {
  const trainer = new VaeTrainer(cfg, images(), { measure });
  const existing = await findCheckpoint(out);
  if (existing !== null)
    await trainer.loadCheckpoint(existing, await readVaeTrainerState(existing));
  const steps: VaeStepStats[] = [];
  await runLoop<VaeStepStats, VaeHeldOut, VaeRunSettings>(trainer, {
    outDir: out,
    settings: RUN,
    stopAt,
    averaged: (s) => ({ loss: s.loss }),
    onProgress: (p) => steps.push(p.stats),
  });
  return { trainer, steps };
}

async function checkpointBytes(out: string): Promise<Map<string, Buffer>> {
  const dir = join(out, 'checkpoint');
  const names = [
    'vae/diffusion_pytorch_model.safetensors',
    'vae/config.json',
    'optimizer.safetensors',
    'discriminator.safetensors',
    'discriminator_optimizer.safetensors',
    'codebook_ema.safetensors',
  ];
  const m = new Map<string, Buffer>();
  for (const n of names) {
    try {
      m.set(n, await readFile(join(dir, n)));
    } catch {
      // not part of this kind of run
    }
  }
  return m;
}

void describe('resolveVaeConfig', () => {
  void test('fills the model from the data and the kind', () => {
    const c = config('vq');
    assert.equal(c.model._class_name, 'VQModel');
    assert.equal(c.model.sample_size, 8);
    assert.equal(c.model.in_channels, 1);
    assert.equal(c.model.out_channels, 1);
    assert.equal(c.model.num_vq_embeddings, 16);
    assert.equal(c.discriminator.inChannels, 1);
    assert.equal(config('kl').model._class_name, 'AutoencoderKL');
  });

  void test('refuses a config of the other kind, a U-Net, bad weights and sizes, naming them', () => {
    const ds = images();
    const resolve = (model: Record<string, unknown>, train: Partial<VaeTrainConfig>): unknown =>
      resolveVaeConfig({ model, train: { data: 'mnist', ...train } }, ds);
    assert.throws(
      () => resolve({ _class_name: 'AutoencoderKL', ...CODER }, { kind: 'vq' }),
      /model config is an AutoencoderKL; the vq kind trains a VQModel/,
    );
    assert.throws(
      () => resolve({ _class_name: 'UNet2DModel' }, {}),
      /model config is a UNet2DModel; train-vae trains an AutoencoderKL/,
    );
    assert.throws(
      () => resolve(CODER, { kind: 'kl', emaCodebook: 0.99 }),
      /emaCodebook and deadCodeThreshold are for the vq kind/,
    );
    assert.throws(() => resolve(CODER, { l1Weight: 0, mseWeight: 0 }), /l1Weight \+ mseWeight/);
    assert.throws(
      () => resolve({ ...CODER, block_out_channels: [8, 8, 8, 8] }, { kind: 'kl' }),
      /down_block_types|downsampling factor 8/,
    );
    assert.throws(
      () => resolve(CODER, { discStart: 0, discriminator: { numLayers: 4 } as never }),
      /4 stride-2 layers leave no patch of a 8x8 image/,
    );
    assert.throws(() => resolve(CODER, { kind: 'foo' as never }), /unknown autoencoder kind 'foo'/);
  });
});

void describe('imageHoldoutSplit', () => {
  void test('holds out round(F n) images, the same for the same seed, disjoint and complete', () => {
    const a = imageHoldoutSplit(100, 0.1, 3);
    assert.equal(a.heldOut.length, 10);
    assert.equal(a.train.length, 90);
    assert.deepEqual(imageHoldoutSplit(100, 0.1, 3), a);
    assert.notDeepEqual(imageHoldoutSplit(100, 0.1, 4).heldOut, a.heldOut);
    assert.deepEqual(
      [...a.train, ...a.heldOut].sort((x, y) => x - y),
      [...Array(100).keys()],
    );
    assert.equal(imageHoldoutSplit(5, 0.01, 0).heldOut.length, 1);
    assert.equal(imageHoldoutSplit(5, 0, 0).heldOut.length, 0);
  });
});

void describe('VaeTrainer', () => {
  void test('KL: trains, resumes bit for bit, and saves a folder loadModel reads with its scaling factor', async () => {
    const cfg = config('kl');
    const a = join(fx.dir, 'kl-a');
    const b = join(fx.dir, 'kl-b');
    const one = await train(cfg, a);
    assert.equal(one.trainer.step, 6);
    assert.ok(
      one.steps.every((s) => Number.isFinite(s.loss) && s.kl !== null && s.vq === null),
      'one.steps.every((s) => Number.isFinite(s.loss) && s.kl !== null && s.vq === null)',
    );
    const held = one.trainer.heldOut!;
    assert.equal(held.step, 6);
    assert.equal(held.count, 12);
    assert.ok(held.psnr! > 0 && held.psnrStderr! > 0, 'held.psnr! > 0 && held.psnrStderr! > 0');
    one.trainer.dispose();
    (await train(cfg, b, 3)).trainer.dispose();
    (await train(cfg, b)).trainer.dispose();
    const [x, y] = [await checkpointBytes(a), await checkpointBytes(b)];
    assert.deepEqual(
      [...x.keys()],
      ['vae/diffusion_pytorch_model.safetensors', 'vae/config.json', 'optimizer.safetensors'],
    );
    for (const [k, v] of x) assert.ok(v.equals(y.get(k)!), `${k} differs after --resume`);

    const vaeDir = join(a, 'checkpoint', 'vae');
    const model = await loadModel(vaeDir, { as: AutoencoderKL });
    const sf = model.config.scaling_factor;
    assert.ok(sf > 0 && sf !== 1, `scaling_factor ${sf}`);
    const info = JSON.parse(await readFile(join(a, 'checkpoint', 'sumi.json'), 'utf8')) as {
      scalingFactor: number;
      latentSize: number;
      heldOut: { psnr: number };
    };
    assert.equal(info.scalingFactor, sf);
    assert.equal(info.latentSize, 4);
    assert.equal(info.heldOut.psnr, held.psnr);
    // resolveVaeDir finds the checkpoint's vae/ from the run folder
    const loaded = await loadAutoencoder(a);
    assert.equal(loaded.dir, vaeDir);
    const metrics = (await readFile(join(a, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(metrics.length, 4); // steps 2, 4, 6 and the held-out line
  });

  void test('VQ with an EMA codebook, dead codes and a discriminator: resumes bit for bit', async () => {
    const cfg = config('vq', {
      emaCodebook: 0.8,
      deadCodeThreshold: 0.5,
      discStart: 2,
      discriminator: { numLayers: 1 } as never,
      usageWindow: 3,
    });
    const a = join(fx.dir, 'vq-a');
    const b = join(fx.dir, 'vq-b');
    const one = await train(cfg, a);
    const s = one.steps;
    assert.ok(
      s.every((t) => t.vq !== null && t.codebookUsage! > 0 && t.perplexity! >= 1),
      's.every((t) => t.vq !== null && t.codebookUsage! > 0 && t.perplexity! >= 1)',
    );
    assert.ok(
      s.slice(0, 2).every((t) => t.gLoss === null && t.dLoss === null),
      's.slice(0, 2).every((t) => t.gLoss === null && t.dLoss === null)',
    );
    assert.ok(
      s.slice(2).every((t) => Number.isFinite(t.gLoss) && Number.isFinite(t.dLoss)),
      's.slice(2).every((t) => Number.isFinite(t.gLoss) && Number.isFinite(t.dLoss))',
    );
    assert.ok(one.trainer.heldOut!.codebookUsage! > 0, 'one.trainer.heldOut!.codebookUsage! > 0');
    one.trainer.dispose();
    (await train(cfg, b, 3)).trainer.dispose();
    (await train(cfg, b)).trainer.dispose();
    const [x, y] = [await checkpointBytes(a), await checkpointBytes(b)];
    assert.equal(x.size, 6);
    for (const [k, v] of x) assert.ok(v.equals(y.get(k)!), `${k} differs after --resume`);
    const model = await loadModel(join(a, 'checkpoint', 'vae'), { as: VQModel });
    assert.ok(model.config.scaling_factor !== 1, 'model.config.scaling_factor !== 1');
  });

  void test('an aborted run (Ctrl-C) stops after the current step with a checkpoint', async () => {
    const out = join(fx.dir, 'abort');
    const trainer = new VaeTrainer(config('kl'), images());
    const controller = new AbortController();
    const r = await runLoop<VaeStepStats, VaeHeldOut, VaeRunSettings>(trainer, {
      outDir: out,
      settings: RUN,
      signal: controller.signal,
      averaged: (s) => ({ loss: s.loss }),
      onProgress: (p) => {
        if (p.stats.step === 2) controller.abort();
      },
    });
    assert.equal(r.reason, 'aborted');
    assert.equal(r.step, 2);
    assert.equal(r.heldOut, null, 'no held-out measurement when interrupted');
    const state = await readVaeTrainerState(join(out, 'checkpoint'));
    assert.equal(state.step, 2);
    trainer.dispose();
  });

  void test('a non-finite loss stops the run and keeps the last good checkpoint', async () => {
    const ds = images();
    let poison = false;
    const bad: Dataset = {
      ...ds,
      name: ds.name,
      length: ds.length,
      channels: ds.channels,
      height: ds.height,
      width: ds.width,
      get: (i) => {
        const sample = ds.get(i);
        if (poison) sample.image[0] = NaN;
        return sample;
      },
    };
    const cfg = config('kl', { holdout: 0 });
    const out = join(fx.dir, 'nan');
    const trainer = new VaeTrainer(cfg, bad);
    const run = (): Promise<unknown> =>
      runLoop<VaeStepStats, VaeHeldOut, VaeRunSettings>(trainer, {
        outDir: out,
        settings: RUN,
        averaged: (s) => ({ loss: s.loss }),
      });
    await runLoop<VaeStepStats, VaeHeldOut, VaeRunSettings>(trainer, {
      outDir: out,
      settings: RUN,
      stopAt: 2,
      averaged: (s) => ({ loss: s.loss }),
    });
    const before = await checkpointBytes(out);
    poison = true;
    await assert.rejects(run(), (e: unknown) => {
      assert.ok(e instanceof NonFiniteError, 'e instanceof NonFiniteError');
      assert.match(
        e.message,
        /the loss is NaN at step 3; the last good checkpoint \(step 2\) is kept/,
      );
      return true;
    });
    const after = await checkpointBytes(out);
    for (const [k, v] of before) assert.ok(v.equals(after.get(k)!), `${k} changed`);
    trainer.dispose();
  });
});
