/**
 * Conditioning end to end: the denoiser interface on both U-Nets, classifier-free guidance
 * (scale 1 is the conditional output exactly; w and φ follow their equations), the encoder
 * attention mask (a masked token is as good as absent), condition sources' errors, and a tiny
 * text-to-image model that trains, resumes bit for bit, saves a pipeline folder and samples.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  classConditioning,
  ConditionError,
  encodeConditions,
  findCheckpoint,
  generate,
  guidedDenoiser,
  loadPipeline,
  readTrainerState,
  rescaleGuidance,
  resolveTrainConfig,
  runTraining,
  savePipeline,
  type TrainConfig,
  Trainer,
  createSampler,
  unconditional,
} from '../../src/diffusion/index.js';
import {
  concat,
  cpuBackend,
  mul,
  Generator,
  noGrad,
  randn,
  slice,
  sqrt,
  tensor,
  variance,
} from '../../src/engine/index.js';
import { createModel, type UNet2DConditionModel } from '../../src/nn/models/index.js';
import {
  TINY_TEXT_ENCODER,
  TINY_TEXT_UNET,
  TINY_UNET,
  tinyUNet,
  trainFixture,
} from './train-setup.js';
import { maxAbsDiff } from '../engine/testing.js';

const fx = trainFixture('sumi-cond-');

function textConfig(train: Partial<TrainConfig> = {}): TrainConfig {
  return resolveTrainConfig(
    {
      model: TINY_TEXT_UNET,
      scheduler: { num_train_timesteps: 100 },
      train: {
        data: 'mnist',
        textCond: true,
        textEncoder: TINY_TEXT_ENCODER,
        maxTokens: 8,
        steps: 4,
        batchSize: 4,
        lr: 2e-3,
        warmupSteps: 1,
        labelDropout: 0.5,
        emaDecay: 0.9,
        ...train,
      },
    },
    fx.mnist8,
  );
}

void describe('the denoiser interface', () => {
  void test('UNet2DModel.denoise is forward with the class labels; cross-attention inputs are refused', () => {
    const m = tinyUNet(1, { num_class_embeds: 3 });
    assert.deepEqual(m.sampleShape, [1, 8, 8]);
    assert.deepEqual(m.conditioningInputs, { numClassEmbeds: 3, crossAttentionDim: null });
    noGrad(() => {
      const x = randn([2, 1, 8, 8], { generator: new Generator(2) });
      const labels = tensor(Int32Array.from([0, 2]), [2], { dtype: 'int32' });
      const a = m.denoise(x, [5, 7], { classLabels: labels });
      const b = m.forward(x, [5, 7], { classLabels: labels });
      assert.equal(maxAbsDiff(a, b), 0);
      const states = randn([2, 3, 4], { generator: new Generator(3) });
      assert.throws(
        () => m.denoise(x, [5, 7], { classLabels: labels, encoderHiddenStates: states }),
        /no cross-attention/,
      );
    });
  });

  void test('UNet2DConditionModel: a masked token is as good as absent', () => {
    const m = createModel(
      {
        ...TINY_TEXT_UNET,
        sample_size: 8,
        in_channels: 1,
        out_channels: 1,
        cross_attention_dim: 6,
      },
      { generator: new Generator(4) },
    ) as UNet2DConditionModel;
    assert.deepEqual(m.conditioningInputs, { numClassEmbeds: null, crossAttentionDim: 6 });
    noGrad(() => {
      const x = randn([2, 1, 8, 8], { generator: new Generator(5) });
      const states = randn([2, 5, 6], { generator: new Generator(6) });
      // Tokens 3 and 4 are padding in both rows.
      const mask = tensor(Int32Array.from([1, 1, 1, 0, 0, 1, 1, 1, 0, 0]), [2, 5], {
        dtype: 'int32',
      });
      const masked = m.denoise(x, 10, { encoderHiddenStates: states, encoderAttentionMask: mask });
      const cut = m.denoise(x, 10, { encoderHiddenStates: slice(states, [0, 0], [2, 3]) });
      const full = m.denoise(x, 10, { encoderHiddenStates: states });
      assert.ok(maxAbsDiff(masked, cut) < 1e-5, `masked vs cut: ${maxAbsDiff(masked, cut)}`);
      assert.ok(maxAbsDiff(masked, full) > 1e-3, 'the padding tokens do change the output');
      assert.throws(
        () =>
          m.denoise(x, 10, {
            encoderHiddenStates: states,
            encoderAttentionMask: slice(mask, [0, 0], [2, 4]),
          }),
        /attention mask \[2, 4\] must be \[2, 5\]/,
      );
    });
  });
});

void describe('classifier-free guidance', () => {
  const m = tinyUNet(7, { num_class_embeds: 4 });
  const source = classConditioning({ numClasses: 3, nullClassId: 3 });
  const cpu = cpuBackend();

  void test('scale 1 is the conditional prediction, exactly (no unconditional pass)', () => {
    noGrad(() => {
      const x = randn([3, 1, 8, 8], { generator: new Generator(8) });
      const { cond, uncond } = encodeConditions(source, { values: [0, 1, 2] }, cpu);
      assert.equal(uncond, null, 'w = 1 encodes no ∅');
      const guided = guidedDenoiser(m, { cond, scale: 1 })(x, 17);
      assert.equal(maxAbsDiff(guided, m.denoise(x, 17, cond)), 0);
    });
  });

  void test('w and φ: ε_∅ + w(ε_c − ε_∅), then the std rescale of Lin et al.', () => {
    noGrad(() => {
      const x = randn([3, 1, 8, 8], { generator: new Generator(9) });
      const w = 3;
      const { cond, uncond } = encodeConditions(
        source,
        { values: [0, 1, 2], guidanceScale: w },
        cpu,
      );
      assert.ok(uncond !== null, '∅ is encoded');
      // Reference: the two predictions from one batched forward, combined on the host.
      const both = m.denoise(concat([x, x], 0), 17, {
        classLabels: concat([cond.classLabels!, uncond.classLabels!], 0),
      });
      const c = slice(both, [0], [3]).dataSync();
      const u = slice(both, [3], [6]).dataSync();
      const want = c.map((ci, i) => u[i]! + w * (ci - u[i]!));
      const got = guidedDenoiser(m, { cond, uncond, scale: w })(x, 17).dataSync();
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `guided value ${i}`);
      }
      // φ = 0.7: per sample, std(ε_r) = std(ε_c), and ε = 0.7 ε_r + 0.3 ε̃.
      const phi = 0.7;
      const resc = guidedDenoiser(m, { cond, uncond, scale: w, rescale: phi })(x, 17).dataSync();
      const size = 64;
      for (let b = 0; b < 3; b++) {
        const row = (v: Float32Array | Float64Array | Int32Array): number[] =>
          Array.from(v.subarray(b * size, (b + 1) * size));
        const std = (v: number[]): number => {
          const mean = v.reduce((s, a) => s + a, 0) / v.length;
          return Math.sqrt(v.reduce((s, a) => s + (a - mean) ** 2, 0) / (v.length - 1));
        };
        const g = row(Float64Array.from(want));
        const ratio = std(row(c)) / std(g);
        const r = row(resc);
        for (let i = 0; i < size; i++) {
          const ref = phi * g[i]! * ratio + (1 - phi) * g[i]!;
          assert.ok(Math.abs(r[i]! - ref) < 1e-5, `rescaled value ${i} of image ${b}`);
        }
      }
    });
  });

  void test('rescaleGuidance with φ = 1 matches the conditional std', () => {
    noGrad(() => {
      const g = randn([2, 3, 4, 4], { generator: new Generator(10) });
      const c = mul(randn([2, 3, 4, 4], { generator: new Generator(11) }), 0.5);
      const r = rescaleGuidance(g, c, 1);
      const sr = sqrt(variance(r, [1, 2, 3], false, 1)).dataSync();
      const sc = sqrt(variance(c, [1, 2, 3], false, 1)).dataSync();
      for (let b = 0; b < 2; b++) assert.ok(Math.abs(sr[b]! - sc[b]!) < 1e-5, `std of image ${b}`);
    });
  });

  void test('condition sources refuse what they cannot take', () => {
    assert.throws(
      () => source.encode([5], cpu),
      /class 5 is not one of the model's classes 0\.\.2/,
    );
    assert.throws(() => source.encode(['a seven'], cpu), /not text-conditional/);
    const noDrop = classConditioning({ numClasses: 3, nullClassId: null });
    assert.throws(
      () => encodeConditions(noDrop, { values: [1], guidanceScale: 2 }, cpu),
      /trained with condition dropout/,
    );
    assert.throws(
      () => encodeConditions(unconditional(), { values: [null], guidanceScale: 2 }, cpu),
      /unconditional/,
    );
    assert.throws(
      () => encodeConditions(source, { values: [1], negative: ['x'], guidanceScale: 2 }, cpu),
      ConditionError,
    );
  });
});

void describe('a text-to-image model', () => {
  const FILES = [
    'unet/diffusion_pytorch_model.safetensors',
    'unet_ema/diffusion_pytorch_model.safetensors',
    'text_encoder/model.safetensors',
    'text_encoder_ema/model.safetensors',
    'optimizer.safetensors',
    'tokenizer/tokenizer.json',
  ];
  async function bytes(out: string): Promise<Map<string, Buffer>> {
    const ckpt = (await findCheckpoint(out))!;
    return new Map(
      await Promise.all(FILES.map(async (f) => [f, await readFile(join(ckpt, f))] as const)),
    );
  }
  async function train(out: string, cfg: TrainConfig, stopAt?: number): Promise<void> {
    const trainer = new Trainer(cfg, fx.mnist8);
    try {
      await runTraining(trainer, {
        outDir: out,
        stopAt,
        settings: { saveEvery: 0, sampleEvery: 0 },
      });
    } finally {
      trainer.dispose();
    }
  }

  void test('trains the U-Net and the text encoder jointly, and resumes bit for bit', async () => {
    const a = join(fx.dir, 'text-one-go');
    await train(a, textConfig());
    const b = join(fx.dir, 'text-split');
    await train(b, textConfig(), 2);
    const half = await bytes(b);
    const ckpt = (await findCheckpoint(b))!;
    const state = await readTrainerState(ckpt);
    const resumed = new Trainer(state.config, fx.mnist8);
    try {
      await resumed.loadCheckpoint(ckpt, state);
      await runTraining(resumed, { outDir: b, settings: { saveEvery: 0, sampleEvery: 0 } });
    } finally {
      resumed.dispose();
    }
    const one = await bytes(a);
    const two = await bytes(b);
    for (const f of FILES) assert.ok(one.get(f)!.equals(two.get(f)!), `${f} differs after resume`);
    for (const f of [
      'unet/diffusion_pytorch_model.safetensors',
      'text_encoder/model.safetensors',
    ]) {
      assert.ok(!half.get(f)!.equals(one.get(f)!), `${f} changes after step 2 (it is trained)`);
    }
  });

  void test('its pipeline folder loads, samples from prompts with guidance, and exports', async () => {
    const out = join(fx.dir, 'text-one-go');
    const p = await loadPipeline(out);
    assert.equal(p.condition.kind, 'text');
    assert.equal(p.condition.hasNull, true);
    const index = JSON.parse(
      await readFile(join(p.layout.root, 'model_index.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.deepEqual(index.text_encoder, ['transformers', 'CLIPTextModel']);
    const backend = cpuBackend();
    const run = (pl: typeof p): Float32Array | Float64Array | Int32Array => {
      const { cond, uncond } = encodeConditions(
        pl.condition,
        {
          values: ['a handwritten seven', 'the digit one'],
          negative: ['zero', ''],
          guidanceScale: 2,
        },
        backend,
      );
      const x = generate(pl.model, createSampler('ddim', pl.schedulerConfig), {
        n: 2,
        seed: 3,
        numInferenceSteps: 3,
        cond,
        uncond,
        guidanceScale: 2,
      });
      assert.deepEqual(x.shape, [2, 1, 8, 8]);
      return x.dataSync();
    };
    const before = run(p);
    assert.ok(before.every(Number.isFinite), 'finite samples');
    assert.throws(() => p.condition.encode([3], backend), /text-conditioned: give a prompt/);
    const exported = join(fx.dir, 'text-export');
    await savePipeline(p, exported);
    const q = await loadPipeline(exported);
    assert.deepEqual(
      Array.from(run(q)),
      Array.from(before),
      'the exported folder samples the same',
    );
    // A text model folder without its tokenizer is an error naming what is missing.
    await rm(join(exported, 'tokenizer'), { recursive: true });
    await assert.rejects(loadPipeline(exported), /has no tokenizer\//);
  });

  void test('text conditioning needs cross-attention; cross-attention needs text', () => {
    assert.throws(
      () =>
        resolveTrainConfig(
          {
            model: { ...TINY_UNET, _class_name: 'UNet2DModel' },
            scheduler: {},
            train: { data: 'mnist', textCond: true },
          },
          fx.mnist8,
        ),
      /needs a UNet2DConditionModel/,
    );
    assert.throws(
      () =>
        resolveTrainConfig(
          { model: TINY_TEXT_UNET, scheduler: {}, train: { data: 'mnist' } },
          fx.mnist8,
        ),
      /train it with text conditioning/,
    );
  });
});
