/**
 * LoRA runs: only the adapters train (the base weights keep every bit, get no gradient and no
 * optimizer state), the checkpoint holds the adapters and diffusers' LoRA file, resuming is exact,
 * and a base that does not fit the run is named key by key.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  findCheckpoint,
  loadPipeline,
  readTrainerState,
  setUpTraining,
  type TrainRequest,
} from '../../src/diffusion/index.js';
import { randn, tensor } from '../../src/engine/index.js';
import {
  LORA_WEIGHTS_NAME,
  loadTensors,
  loraNetworkFromFile,
  readSafetensors,
} from '../../src/nn/index.js';
import { assertResumesExactly, trainBase, trainFixture, trainRequest } from './train-setup.js';

/** A tiny class-conditional U-Net with attention at 4×4 (8 attention projections). */
const MODEL = {
  block_out_channels: [8, 16],
  layers_per_block: 1,
  norm_num_groups: 4,
  attention_head_dim: 4,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
};
const SCHEDULER = { num_train_timesteps: 100 };

const fx = trainFixture('sumi-lora-');

/** A base model folder: a 2-step class-conditional run. */
const makeBase = (out: string): Promise<void> => trainBase(fx, out, MODEL, { classCond: true });

function request(out: string, base: string, extra: Partial<TrainRequest> = {}): TrainRequest {
  return {
    outDir: out,
    resume: false,
    source: {
      label: 'base',
      config: { model: { ...MODEL, sample_size: 8 }, scheduler: SCHEDULER, train: {} },
    },
    train: {
      data: 'mnist',
      steps: 4,
      batchSize: 4,
      lr: 5e-3,
      warmupSteps: 0,
      classCond: true,
      emaDecay: null,
      lora: { base, rank: 2, alpha: 4, targets: ['to_q', 'to_k', 'to_v', 'to_out.0'] },
    },
    scheduler: SCHEDULER,
    ...extra,
  };
}

void describe('LoRA training', () => {
  void test('trains only the adapters: the base keeps every bit, no gradients, no optimizer state', async () => {
    const base = join(fx.dir, 'base');
    await makeBase(base);
    const baseFile = join(base, 'checkpoint', 'unet_ema', 'diffusion_pytorch_model.safetensors');
    const before = await readSafetensors(baseFile);
    const out = join(fx.dir, 'lora');
    const trainer = await trainRequest(request(out, base));
    try {
      assert.equal(trainer.step, 4);
      const lora = trainer.lora!;
      assert.equal(lora.adapters.size, 16, 'q, k, v, out of 4 attentions (down, mid, 2 up)');
      assert.equal(trainer.numParameters(), lora.numParameters());
      // The base: unchanged, frozen, no gradient.
      for (const [name, p] of trainer.model.namedParameters()) {
        const want = before.tensors.get(name)!.data;
        const got = p.dataSync();
        assert.ok(
          want.length === got.length && want.every((v, i) => v === got[i]),
          `${name} unchanged`,
        );
        assert.ok(!p.requiresGrad && p.grad === null, `${name} frozen`);
      }
      // The optimizer holds state for the adapters' tensors only.
      const state = trainer.optimizer.stateDict();
      const names = [...state.keys()];
      assert.ok(names.length > 0, 'optimizer state');
      assert.ok(
        names.every((n) => /\.lora_[AB]\.weight/.test(n)),
        `optimizer state only for adapters, got ${names.filter((n) => !/lora_/.test(n)).join(', ')}`,
      );
      for (const t of state.values()) t.dispose();
      // The adapters moved: B is no longer 0.
      const b = lora.adapters.get('mid_block.attentions.0.to_v')!.loraB.weight.dataSync();
      assert.ok(
        b.some((v) => v !== 0),
        'B trained away from 0',
      );

      const ckpt = (await findCheckpoint(out))!;
      await stat(join(ckpt, 'unet_lora', 'adapter_model.safetensors'));
      await assert.rejects(() => stat(join(ckpt, 'unet')), 'no unet/ in a LoRA checkpoint');
      await assert.rejects(() => stat(join(ckpt, 'model_index.json')), 'no model_index.json');
      const file = await readSafetensors(join(ckpt, LORA_WEIGHTS_NAME));
      assert.ok(
        file.tensors.has('unet.down_blocks.1.attentions.0.to_out.0.lora_B.weight'),
        'diffusers keys',
      );

      // The file on a freshly loaded base gives the trainer's adapted output.
      const fresh = await loadPipeline(base);
      const net = (await loraNetworkFromFile(fresh.model, file, 'lora')).attach();
      assert.equal(net.adapters.get('up_blocks.0.attentions.1.to_q')!.alpha, 4);
      const x = randn([2, 1, 8, 8], { seed: 5 });
      const cond = { classLabels: tensor([3, 7], [2], { dtype: 'int32' }) };
      const want = trainer.model.denoise(x, [10, 60], cond).dataSync();
      const got = fresh.model.denoise(x, [10, 60], cond).dataSync();
      assert.ok(
        want.every((v, i) => v === got[i]),
        'same output from the file as from the trainer',
      );
    } finally {
      trainer.dispose();
    }
  });

  void test('resumes exactly: 2 steps, a checkpoint, 2 more = 4 in one go', async () => {
    const base = join(fx.dir, 'base');
    const whole = join(fx.dir, 'whole');
    await assertResumesExactly(
      (out, extra) => request(out, base, extra),
      whole,
      join(fx.dir, 'parts'),
      2,
      ['unet_lora/adapter_model.safetensors', 'optimizer.safetensors', LORA_WEIGHTS_NAME],
    );
    const opt = await loadTensors(join(whole, 'checkpoint', 'optimizer.safetensors'));
    assert.ok(
      [...opt.keys()].every((k) => k.includes('lora_')),
      'the checkpoint holds no optimizer state for the base',
    );
    for (const t of opt.values()) t.dispose();
  });

  void test("refuses to resume on a base whose weights file changed, naming both sha256's", async () => {
    const base = join(fx.dir, 'base-copy');
    await cp(join(fx.dir, 'base'), base, { recursive: true });
    const out = join(fx.dir, 'moved');
    (await trainRequest(request(out, base), 2)).dispose();
    const weights = join(base, 'checkpoint', 'unet_ema', 'diffusion_pytorch_model.safetensors');
    const sha = async (): Promise<string> =>
      createHash('sha256')
        .update(await readFile(weights))
        .digest('hex');
    const was = await sha();
    const state = await readTrainerState(join(out, 'checkpoint'));
    assert.deepEqual(state.baseWeights, { path: weights, sha256: was });
    // One bit of the last weight's lowest mantissa byte: a base that still loads and fits.
    const bytes = await readFile(weights);
    bytes[bytes.length - 4]! ^= 1;
    await writeFile(weights, bytes);
    const now = await sha();
    await assert.rejects(
      () => setUpTraining(request(out, base, { resume: true })),
      (e: unknown) =>
        e instanceof Error &&
        e.message.includes(`(sha256 ${was})`) &&
        e.message.includes(`(sha256 ${now})`),
    );
  });

  void test('names what differs when the base does not fit the run', async () => {
    const base = join(fx.dir, 'base');
    const req = request(join(fx.dir, 'misfit'), base);
    req.source = {
      label: 'other',
      config: {
        model: { ...MODEL, sample_size: 8, block_out_channels: [8, 8] },
        scheduler: SCHEDULER,
        train: {},
      },
    };
    await assert.rejects(
      () => setUpTraining(req),
      /base model .*base does not fit this run: block_out_channels: base \[8,16\], run \[8,8\]/,
    );
  });
});
