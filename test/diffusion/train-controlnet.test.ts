/**
 * ControlNet runs: the base keeps every bit and gets no gradient or optimizer state, the ControlNet
 * trains away from its zero convolutions, the checkpoint holds diffusers' ControlNet folder, and
 * resuming is exact.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { findCheckpoint, type TrainRequest } from '../../src/diffusion/index.js';
import { loadTensors, readSafetensors } from '../../src/nn/index.js';
import {
  assertResumesExactly,
  TINY_UNET,
  trainBase,
  trainFixture,
  trainRequest,
} from './train-setup.js';

const SCHEDULER = { num_train_timesteps: 100 };
const fx = trainFixture('sumi-controlnet-');

/** A base model folder: a 2-step unconditional run. */
const makeBase = (out: string): Promise<void> => trainBase(fx, out, TINY_UNET, { emaDecay: null });

function request(out: string, base: string, extra: Partial<TrainRequest> = {}): TrainRequest {
  return {
    outDir: out,
    resume: false,
    source: {
      label: 'base',
      config: { model: { ...TINY_UNET, sample_size: 8 }, scheduler: SCHEDULER, train: {} },
    },
    train: {
      data: 'mnist',
      steps: 2,
      batchSize: 4,
      lr: 5e-3,
      warmupSteps: 0,
      emaDecay: 0.9,
      controlnet: { base, control: 'edges', conditioningEmbeddingOutChannels: [4] },
    },
    scheduler: SCHEDULER,
    ...extra,
  };
}

void describe('ControlNet training', () => {
  void test('trains the ControlNet only and saves it as a diffusers ControlNet folder', async () => {
    const base = join(fx.dir, 'base');
    await makeBase(base);
    const baseFile = join(base, 'checkpoint', 'unet', 'diffusion_pytorch_model.safetensors');
    const before = await readSafetensors(baseFile);
    const out = join(fx.dir, 'cn');
    const trainer = await trainRequest(request(out, base));
    try {
      assert.equal(trainer.step, 2);
      const cn = trainer.controlnet!;
      assert.equal(trainer.numParameters(), cn.numParameters());
      for (const [name, p] of trainer.model.namedParameters()) {
        const want = before.tensors.get(name)!.data;
        const got = p.dataSync();
        assert.ok(
          want.length === got.length && want.every((v, i) => v === got[i]),
          `${name} unchanged`,
        );
        assert.ok(!p.requiresGrad && p.grad === null, `${name} frozen`);
      }
      const zero = cn.controlnetMidBlock.weight.dataSync();
      assert.ok(
        zero.some((v) => v !== 0),
        'the mid block zero convolution trained away from 0',
      );
      const ckpt = (await findCheckpoint(out))!;
      const config = JSON.parse(
        await readFile(join(ckpt, 'controlnet', 'config.json'), 'utf8'),
      ) as Record<string, unknown>;
      assert.equal(config._class_name, 'ControlNetModel');
      assert.equal(config.unet_class_name, 'UNet2DModel');
      assert.equal(config.conditioning_channels, 1);
      const file = await readSafetensors(
        join(ckpt, 'controlnet', 'diffusion_pytorch_model.safetensors'),
      );
      assert.ok(file.tensors.has('controlnet_down_blocks.0.weight'), 'diffusers keys');
      assert.ok(file.tensors.has('controlnet_cond_embedding.conv_out.bias'), 'diffusers keys');
      await stat(join(ckpt, 'controlnet_ema', 'diffusion_pytorch_model.safetensors'));
      await assert.rejects(() => stat(join(ckpt, 'unet')), 'no unet/ in a ControlNet checkpoint');
      const opt = await loadTensors(join(ckpt, 'optimizer.safetensors'));
      assert.equal(opt.size > 0, true, 'optimizer state');
      assert.ok(
        [...opt.keys()].every((k) => /^(controlnet_|conv_in|time_|down_blocks|mid_block)/.test(k)),
        'optimizer state only for the ControlNet',
      );
      for (const t of opt.values()) t.dispose();
    } finally {
      trainer.dispose();
    }
  });

  void test('resumes exactly: 1 step, a checkpoint, 1 more = 2 in one go', async () => {
    const base = join(fx.dir, 'base');
    await assertResumesExactly(
      (out, extra) => request(out, base, extra),
      join(fx.dir, 'whole'),
      join(fx.dir, 'parts'),
      1,
      [
        'controlnet/diffusion_pytorch_model.safetensors',
        'controlnet_ema/diffusion_pytorch_model.safetensors',
        'optimizer.safetensors',
      ],
    );
  });
});
