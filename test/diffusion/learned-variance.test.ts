/**
 * Learned variances (improved DDPM, Nichol & Dhariwal 2021) end to end: `variance_type:
 * learned_range` gives the denoiser 2C output channels and the hybrid loss L_simple + λ L_vlb,
 * whose VLB term reaches the variance channels only; the model trains; DDPM samples with Σ_θ and
 * every other sampler with the mean part only; classifier-free guidance guides the mean part and
 * keeps the conditional Σ_θ part; the NLL bound uses Σ_θ; `sumi train --variance` sets it up.
 *
 * A U-Net's variance channels are pinned to v with conv_out's weights for them set to 0 and the
 * bias to v: v = −1 is log Σ_θ = log β̃_t (fixed_small), v = +1 is log β_t (fixed_large but at
 * t = 0, where learned_range gives β_0 and fixed_large β̃_1).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { main } from '../../src/cli/main.js';
import {
  addNoise,
  classConditioning,
  createSampler,
  encodeConditions,
  generate,
  guidedDenoiser,
  makeSchedule,
  meanPartOf,
  modelDistributionFromParts,
  parseVarianceType,
  perSampleMse,
  resolveTrainConfig,
  sample,
  simpleLoss,
  splitLearnedVariance,
  type TrainConfig,
  TrainConfigError,
  Trainer,
  trainingLoss,
  unconditional,
  vbTermBpd,
} from '../../src/diffusion/index.js';
import {
  add,
  concat,
  cpuBackend,
  Generator,
  mean,
  mul,
  noGrad,
  randn,
  slice,
  type Tensor,
  tensor,
} from '../../src/engine/index.js';
import { modelNll, spreadIndices } from '../../src/eval/index.js';
import { type UNet2DModel } from '../../src/nn/models/index.js';
import { TINY_UNET, tinyUNet, trainFixture } from './train-setup.js';
import { assertClose, maxAbsDiff } from '../engine/testing.js';

const fx = trainFixture('sumi-lv-');
const T = 100;
const LEARNED = { num_train_timesteps: T, variance_type: 'learned_range' } as const;

function lvConfig(train: Partial<TrainConfig> = {}, scheduler: Record<string, unknown> = LEARNED) {
  return resolveTrainConfig(
    { model: TINY_UNET, scheduler, train: { data: 'mnist', batchSize: 8, ...train } },
    fx.mnist8,
  );
}

function param(m: UNet2DModel, name: string): Tensor {
  const p = m.namedParameters().find(([n]) => n === name);
  assert.ok(p !== undefined, `the model has a parameter ${name}`);
  return p[1];
}

/** Pins the variance channel (channel 1 of 2) to v: conv_out's weights for it 0, its bias v. */
function pinVariance(m: UNet2DModel, v: number): void {
  const w = param(m, 'conv_out.weight');
  const b = param(m, 'conv_out.bias');
  const per = w.size / 2;
  const wv = Float64Array.from(w.dataSync());
  wv.fill(0, per);
  const bv = Float64Array.from(b.dataSync());
  bv[1] = v;
  w.setData(tensor(wv, w.shape, { dtype: w.dtype }));
  b.setData(tensor(bv, b.shape, { dtype: b.dtype }));
}

/** The same network with only its mean channel (conv_out's first row): a fixed-variance model. */
async function meanOnly(m: UNet2DModel): Promise<UNet2DModel> {
  const c = tinyUNet(99);
  await c.to({ dtype: param(m, 'conv_out.bias').dtype });
  const sd = new Map(m.namedParameters());
  const w = sd.get('conv_out.weight')!;
  sd.set('conv_out.weight', slice(w, [0], [1]));
  sd.set('conv_out.bias', slice(sd.get('conv_out.bias')!, [0], [1]));
  await c.loadStateDict(sd);
  return c.eval();
}

const read = (t: Tensor): number[] => Array.from(t.dataSync());

void describe('training a learned variance', () => {
  void test('learned_range: 2C output channels; learned is refused; --variance spellings', () => {
    const cfg = lvConfig();
    assert.equal(cfg.model.out_channels, 2, 'mean part and variance part');
    assert.equal(cfg.scheduler.variance_type, 'learned_range');
    const fixed = resolveTrainConfig(
      {
        model: { ...TINY_UNET, out_channels: 2 },
        scheduler: { num_train_timesteps: T },
        train: { data: 'mnist' },
      },
      fx.mnist8,
    );
    assert.equal(fixed.model.out_channels, 1, 'a fixed variance: C channels whatever was given');
    assert.throws(
      () => lvConfig({}, { variance_type: 'learned' }),
      (e: unknown) => e instanceof TrainConfigError && /log σ² is undefined/.test(e.message),
    );
    assert.throws(() => lvConfig({}, { variance_type: 'fixed_large_log' }), /not supported/);
    assert.equal(parseVarianceType('learned-range'), 'learned_range');
    assert.equal(parseVarianceType('FIXED_LARGE'), 'fixed_large');
    assert.throws(() => parseVarianceType('learned'), /learned_range, fixed_small, fixed_large/);
    // A config whose model lacks the variance channels is refused before anything is built.
    assert.throws(
      () => new Trainer({ ...cfg, model: { ...cfg.model, out_channels: 1 } }, fx.mnist8),
      /needs out_channels 2, the model has 1/,
    );
  });

  void test("the VLB term's gradient reaches the variance channels only (U-Net, float64)", async () => {
    const m = tinyUNet(5, { out_channels: 2 });
    await m.to({ dtype: 'float64' });
    const s = makeSchedule(Float64Array.from({ length: T }, (_, t) => 1e-3 + (0.1 * t) / T));
    const pixels = [0, 1, 2, 3].flatMap((i) =>
      Array.from(fx.mnist8.get(i).image, (v) => 2 * v - 1),
    );
    const x0 = tensor(Float64Array.from(pixels), [4, 1, 8, 8], { dtype: 'float64' });
    const noise = randn(x0.shape, { seed: 3, dtype: 'float64' });
    const ts = [0, 1, 40, 99]; // the decoder term, and KL terms
    const xt = addNoise(s, x0, noise, ts);
    const f64 = (v: ArrayLike<number>) => Float64Array.from(v);
    /** conv_out's gradient for the loss: [mean row, variance row] of the weight and the bias. */
    const grads = (loss: (out: Tensor) => Tensor) => {
      m.zeroGrad();
      loss(m.denoise(xt, ts)).backward();
      const w = f64(param(m, 'conv_out.weight').grad!.dataSync());
      const b = f64(param(m, 'conv_out.bias').grad!.dataSync());
      const half = w.length / 2;
      return {
        mean: [...w.subarray(0, half), b[0]!],
        variance: [...w.subarray(half), b[1]!],
      };
    };
    // λ = 10: a VLB term 10⁴ times the paper's, so any leak into the mean would show.
    const lambda = 10;
    const hybrid = grads((out) =>
      trainingLoss(
        s,
        { x0, noise, timesteps: ts, modelOutput: out, xt },
        { varianceType: 'learned_range', vlbWeight: lambda },
      ),
    );
    const simple = grads((out) => simpleLoss(meanPartOf(out, 1), noise));
    // The same objective with the mean *not* detached: the control that shows the test can fail.
    const leaky = grads((out) => {
      const [mp, vp] = splitLearnedVariance(out, 1);
      const dist = modelDistributionFromParts(s, mp, vp, xt, ts, { varianceType: 'learned_range' });
      const vb = vbTermBpd(s, x0, xt, ts, dist);
      return mean(add(perSampleMse(mp, noise), mul(vb, lambda * T)));
    });
    const scale = Math.max(...simple.mean.map(Math.abs));
    assert.ok(scale > 0, 'the MSE reaches the mean row');
    assert.ok(
      maxAbsDiff(hybrid.mean, simple.mean) <= 1e-12 * scale,
      `mean row: hybrid vs L_simple differ by ${maxAbsDiff(hybrid.mean, simple.mean)}`,
    );
    assert.ok(
      simple.variance.every((g) => g === 0),
      'L_simple does not touch the variance row',
    );
    assert.ok(
      hybrid.variance.some((g) => Math.abs(g) > 1e-6),
      'the VLB term trains the variance row',
    );
    assert.ok(
      maxAbsDiff(leaky.mean, simple.mean) > 1e3 * 1e-12 * scale,
      'without the stop-gradient the VLB term would reach the mean row',
    );
    m.zeroGrad();
  });

  void test('trains with a finite hybrid loss; checkpoint and preview carry the variance', async () => {
    const trainer = new Trainer(lvConfig({ steps: 4, lr: 2e-3, warmupSteps: 1 }), fx.mnist8);
    try {
      assert.equal(trainer.varianceType, 'learned_range');
      const losses: number[] = [];
      while (trainer.step < 4) losses.push((await trainer.trainStep()).loss);
      assert.ok(
        losses.every((l) => Number.isFinite(l) && l > 0),
        `hybrid losses ${losses.join(', ')}`,
      );
      const files = await trainer.checkpointFiles();
      const json = (path: string) =>
        JSON.parse(new TextDecoder().decode(files.find((f) => f.path === path)!.bytes)) as Record<
          string,
          unknown
        >;
      assert.equal(json('unet/config.json').out_channels, 2, 'unet config');
      assert.equal(json('scheduler/scheduler_config.json').variance_type, 'learned_range');
      for (const sampler of ['ddim', 'ddpm']) {
        const grid = trainer.previewImages(2, 3, sampler);
        assert.deepEqual(grid.shape, [2, 1, 8, 8], `${sampler} preview: C channels`);
        assert.ok(read(grid).every(Number.isFinite), `${sampler} preview is finite`);
        grid.dispose();
      }
    } finally {
      trainer.dispose();
    }
  });
});

void describe('sampling a learned variance', () => {
  void test('ddpm, ddim, euler and dpmpp-2m return C channels', () => {
    const m = tinyUNet(7, { out_channels: 2 }).eval();
    for (const name of ['ddpm', 'ddim', 'euler', 'dpmpp-2m']) {
      const scheduler = createSampler(name, LEARNED);
      const x = generate(m, scheduler, { n: 2, seed: 1, numInferenceSteps: 4 });
      assert.deepEqual(x.shape, [2, 1, 8, 8], `${name}: the sample has C channels`);
      assert.ok(read(x).every(Number.isFinite), `${name}: finite`);
      x.dispose();
    }
  });

  void test('DDPM samples with Σ_θ: v = −1 is β̃_t, v = +1 is β_t', async () => {
    const m = tinyUNet(8, { out_channels: 2 }).eval();
    await m.to({ dtype: 'float64' });
    const xT = randn([2, 1, 8, 8], { seed: 4, dtype: 'float64' });
    const run = (variance: string, model: (x: Tensor, t: number) => Tensor): number[] =>
      noGrad(() =>
        read(
          sample(createSampler('ddpm', { ...LEARNED, variance_type: variance }), model, xT, {
            numInferenceSteps: 5,
            generator: new Generator(2),
          }),
        ),
      );
    const full = (x: Tensor, t: number) => m.denoise(x, t);
    const meanPart = (x: Tensor, t: number) => meanPartOf(m.denoise(x, t), 1);
    pinVariance(m, -1);
    const small = run('learned_range', full);
    assertClose(
      small,
      run('fixed_small', meanPart),
      { rtol: 0, atol: 1e-9 },
      'v = −1 vs fixed_small',
    );
    pinVariance(m, 1);
    const large = run('learned_range', full);
    assertClose(
      large,
      run('fixed_large', meanPart),
      { rtol: 0, atol: 1e-9 },
      'v = +1 vs fixed_large',
    );
    assert.ok(
      small.some((v, i) => Math.abs(v - large[i]!) > 1e-3),
      'the variance output changes the samples',
    );
  });

  void test('the other samplers ignore the variance half: the mean part alone, exactly', () => {
    const m = tinyUNet(9, { out_channels: 2 }).eval();
    const xT = randn([2, 1, 8, 8], { seed: 5 });
    for (const name of ['ddim', 'euler', 'dpmpp-2m', 'euler-a', 'unipc']) {
      const run = (model: (x: Tensor, t: number) => Tensor): number[] =>
        noGrad(() =>
          read(
            sample(createSampler(name, LEARNED), model, xT, {
              numInferenceSteps: 4,
              generator: new Generator(3),
            }),
          ),
        );
      const a = run((x, t) => m.denoise(x, t));
      const b = run((x, t) => meanPartOf(m.denoise(x, t), 1));
      assert.deepEqual(a, b, `${name}: the same sample`);
    }
  });
});

void describe('classifier-free guidance of a learned variance', () => {
  void test('guides the mean part, keeps the conditional variance part (hand computation)', () => {
    const m = tinyUNet(10, { out_channels: 2, num_class_embeds: 4 });
    const source = classConditioning({ numClasses: 3, nullClassId: 3 });
    noGrad(() => {
      const x = randn([3, 1, 8, 8], { generator: new Generator(11) });
      const w = 3;
      const phi = 0.5;
      const { cond, uncond } = encodeConditions(
        source,
        { values: [0, 1, 2], guidanceScale: w },
        cpuBackend(),
      );
      assert.ok(uncond !== null, '∅ is encoded');
      const both = read(
        m.denoise(concat([x, x], 0), 17, {
          classLabels: concat([cond.classLabels!, uncond.classLabels!], 0),
        }),
      );
      const got = read(guidedDenoiser(m, { cond, uncond, scale: w, rescale: phi })(x, 17));
      assert.equal(got.length, 3 * 2 * 64, 'the output keeps 2C channels');
      const HW = 64;
      // both: [c_0, c_1, c_2, u_0, u_1, u_2], each [mean (64), variance (64)].
      for (let b = 0; b < 3; b++) {
        const at = (img: number, ch: number) =>
          both.slice((img * 2 + ch) * HW, (img * 2 + ch + 1) * HW);
        const cm = at(b, 0);
        const cv = at(b, 1);
        const um = at(3 + b, 0);
        const g = cm.map((c, i) => um[i]! + w * (c - um[i]!));
        const std = (v: number[]) => {
          const mu = v.reduce((p, q) => p + q, 0) / v.length;
          return Math.sqrt(v.reduce((p, q) => p + (q - mu) ** 2, 0) / (v.length - 1));
        };
        const ratio = std(cm) / std(g);
        const wantMean = g.map((v) => phi * v * ratio + (1 - phi) * v);
        const gotMean = got.slice(b * 2 * HW, (b * 2 + 1) * HW);
        const gotVar = got.slice((b * 2 + 1) * HW, (b * 2 + 2) * HW);
        gotMean.forEach((v, i) =>
          assert.ok(Math.abs(v - wantMean[i]!) < 1e-5, `image ${b}: guided mean ${i}`),
        );
        assert.deepEqual(gotVar, cv, `image ${b}: the conditional variance part, unchanged`);
      }
    });
  });
});

void describe('the NLL bound of a learned variance', () => {
  void test('modelNll reads variance_type: v = −1 is the fixed_small bound, v = +1 fixed_large but L_0', async () => {
    const lv = tinyUNet(12, { out_channels: 2 }).eval();
    const indices = spreadIndices(fx.mnist8.length, 4);
    const nll = (model: UNet2DModel, variance: string) =>
      modelNll({
        model,
        condition: unconditional(),
        schedulerConfig: { ...LEARNED, variance_type: variance },
        dataset: fx.mnist8,
        indices,
        values: indices.map(() => null),
        batchSize: 4,
        stride: 20,
        seed: 0,
      });
    pinVariance(lv, -1);
    const fixedSmall = await nll(await meanOnly(lv), 'fixed_small');
    const minus = await nll(lv, 'learned_range');
    assert.equal(minus.varianceType, 'learned_range');
    const tol = (a: number) => 1e-4 * Math.max(1, Math.abs(a));
    for (const k of ['bitsPerDim', 'prior', 'kl', 'decoder'] as const) {
      assert.ok(
        Math.abs(minus[k] - fixedSmall[k]) < tol(fixedSmall[k]),
        `v = −1, ${k}: ${minus[k]} vs fixed_small ${fixedSmall[k]}`,
      );
    }
    pinVariance(lv, 1);
    const fixedLarge = await nll(await meanOnly(lv), 'fixed_large');
    const plus = await nll(lv, 'learned_range');
    for (const k of ['prior', 'kl'] as const) {
      assert.ok(
        Math.abs(plus[k] - fixedLarge[k]) < tol(fixedLarge[k]),
        `v = +1, ${k}: ${plus[k]} vs fixed_large ${fixedLarge[k]}`,
      );
    }
    assert.ok(
      Math.abs(plus.decoder - fixedLarge.decoder) > 1e-3,
      `L_0 uses β_0 under learned_range, β̃_1 under fixed_large: ${plus.decoder} vs ${fixedLarge.decoder}`,
    );
    assert.ok(Math.abs(plus.kl - minus.kl) > 1e-3, 'the KL terms follow the variance output');
  });
});

void describe('sumi train --variance', () => {
  void test('trains a learned_range model that sumi sample and sumi eval nll read', async () => {
    const config = join(fx.dir, 'tiny.json');
    await writeFile(
      config,
      JSON.stringify({
        model: { _class_name: 'UNet2DModel', ...TINY_UNET },
        scheduler: { num_train_timesteps: T },
        train: { image_size: 8, batch_size: 4, lr: 1e-3, warmup_steps: 1, sample_every: 0 },
      }),
    );
    const out = join(fx.dir, 'cli-run');
    const quiet = async (args: string[]): Promise<{ code: number; stdout: string }> => {
      const { log, error } = console;
      let stdout = '';
      console.log = (...a: unknown[]) => void (stdout += `${a.join(' ')}\n`);
      console.error = () => undefined;
      try {
        return { code: await main(args), stdout };
      } finally {
        console.log = log;
        console.error = error;
      }
    };
    const train = await quiet([
      'train',
      '--data',
      'mnist',
      '--config',
      config,
      '--variance',
      'learned-range',
      '--steps',
      '2',
      '--out',
      out,
      '--quiet',
    ]);
    assert.equal(train.code, 0, 'sumi train exits 0');
    const ckpt = join(out, 'checkpoint');
    const unet = JSON.parse(await readFile(join(ckpt, 'unet', 'config.json'), 'utf8')) as {
      out_channels: number;
    };
    const sched = JSON.parse(
      await readFile(join(ckpt, 'scheduler', 'scheduler_config.json'), 'utf8'),
    ) as { variance_type: string };
    assert.deepEqual([unet.out_channels, sched.variance_type], [2, 'learned_range']);
    const grid = join(fx.dir, 'grid.png');
    const s = await quiet([
      'sample',
      '--model',
      out,
      '--sampler',
      'ddim',
      '--steps',
      '2',
      '--n',
      '2',
      '--out',
      grid,
    ]);
    assert.equal(s.code, 0, 'sumi sample exits 0');
    const e = await quiet([
      'eval',
      'nll',
      '--model',
      out,
      '--data',
      'mnist',
      '--n',
      '2',
      '--stride',
      '50',
      '--json',
      '--quiet',
    ]);
    assert.equal(e.code, 0, 'sumi eval nll exits 0');
    const r = JSON.parse(e.stdout) as { varianceType: string; bitsPerDim: number };
    assert.equal(r.varianceType, 'learned_range');
    assert.ok(Number.isFinite(r.bitsPerDim), `bits/dim ${r.bitsPerDim}`);
    const table = await quiet(['eval', 'nll', '--model', out, '--n', '2', '--stride', '50']);
    assert.match(table.stdout, /variance +the model's Σ_θ between β̃_t and β_t \(learned_range\)/);
  });
});
