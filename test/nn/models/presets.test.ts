/**
 * The model presets under presets/<name>/config.json: each builds, its file is exactly the config
 * Sumi would write (every key, diffusers' layout), the parameter counts are pinned (ddpm-cifar10
 * against diffusers' own count), the small ones run forward at their sample size, and the latent
 * ones fit their autoencoder's latents.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Generator, noGrad, randn, type Tensor } from '../../../src/engine/index.js';
import { AutoencoderKL } from '../../../src/nn/models/autoencoder-kl.js';
import { createModel } from '../../../src/nn/models/create.js';
import { UNet2DModel } from '../../../src/nn/models/unet-2d.js';
import { UNet2DConditionModel } from '../../../src/nn/models/unet-2d-condition.js';
import { VQModel } from '../../../src/nn/models/vq-model.js';

const here = dirname(fileURLToPath(import.meta.url));
const PRESETS = resolve(here, '../../../presets');
const FIXTURE_CIFAR = resolve(here, '../../../../shared/fixtures/diffusers/presets/ddpm-cifar10');

const read = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(PRESETS, name, 'config.json'), 'utf8')) as Record<string, unknown>;

/** Parameter counts, pinned (ddpm-cifar10 is diffusers' count, from the fixtures' count.json). */
const COUNTS: Record<string, number> = {
  'ddpm-cifar10': 35_746_307,
  'mnist-small': 1_112_801,
  'mnist-base': 2_497_873,
  'mnist-small-class': 1_114_209,
  'mnist-small-lv': 1_113_090,
  'mnist-text': 1_411_553,
  'mnist-tiny': 686_769,
  'latent-small': 1_164_836,
  'vae-small': 954_567,
  'vae-emoji': 954_567,
  'vq-emoji': 954_255,
  'emoji-ldm': 3_918_532,
};

void describe('presets', () => {
  const names = readdirSync(PRESETS).filter((n) => existsSync(join(PRESETS, n, 'config.json')));

  void it('are the ones pinned here', () => {
    assert.deepEqual(names.sort(), Object.keys(COUNTS).sort());
  });

  for (const name of names) {
    void it(`${name}: builds, with the pinned parameter count and a complete config`, () => {
      const raw = read(name);
      const m = createModel(raw);
      assert.equal(m.numParameters(), COUNTS[name]);
      // The file holds every key: writing the resolved config gives the same object back.
      assert.deepEqual(JSON.parse(m.configJson()), raw);
    });
  }

  void it('ddpm-cifar10 is the DDPM paper network, as diffusers counts it', () => {
    assert.ok(existsSync(FIXTURE_CIFAR), `no preset fixture at ${FIXTURE_CIFAR}`);
    const count = JSON.parse(readFileSync(join(FIXTURE_CIFAR, 'count.json'), 'utf8')) as {
      parameters: number;
    };
    assert.equal(count.parameters, COUNTS['ddpm-cifar10']);
    const fixture: unknown = JSON.parse(readFileSync(join(FIXTURE_CIFAR, 'config.json'), 'utf8'));
    assert.deepEqual(read('ddpm-cifar10'), fixture);
  });

  void it('the MNIST presets and latent-small run at their sample size', () => {
    const g = new Generator(0);
    noGrad(() => {
      for (const name of [
        'mnist-small',
        'mnist-base',
        'mnist-small-class',
        'mnist-small-lv',
        'mnist-tiny',
        'latent-small',
      ]) {
        const m = createModel(read(name)) as UNet2DModel;
        const s = m.config.sample_size as number;
        const x = randn([2, m.config.in_channels, s, s], { generator: g });
        const labels = m.classEmbedding ? { classLabels: [3, 10] } : {};
        assert.deepEqual(m.forward(x, [1, 999], labels).shape, [2, m.config.out_channels, s, s]);
      }
    });
  });

  void it('mnist-small-lv is mnist-small with a learned variance: 2 output channels, learned_range', () => {
    const { out_channels: lvOut, ...lv } = read('mnist-small-lv');
    const { out_channels: smallOut, ...small } = read('mnist-small');
    assert.deepEqual(lv, small, 'the same network but for out_channels');
    assert.deepEqual([smallOut, lvOut], [1, 2], 'the mean part and Σ_θ part');
    const sched = JSON.parse(
      readFileSync(join(PRESETS, 'mnist-small-lv', 'scheduler_config.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(sched.variance_type, 'learned_range');
    const trainJson = (name: string): string =>
      readFileSync(join(PRESETS, name, 'train.json'), 'utf8');
    assert.equal(trainJson('mnist-small-lv'), trainJson('mnist-small'), 'the same training budget');
  });

  void it('latent-small works on the latents of vae-small', () => {
    const vae = createModel(read('vae-small')) as AutoencoderKL;
    const unet = createModel(read('latent-small')) as UNet2DModel;
    const s = vae.config.sample_size as number;
    noGrad(() => {
      const z = vae
        .encode(randn([1, vae.config.in_channels, s, s], { generator: new Generator(1) }))
        .mode();
      assert.equal(s / vae.downsampleFactor, unet.config.sample_size);
      assert.deepEqual(unet.forward(z, 10).shape, z.shape);
      assert.deepEqual(vae.decode(z).shape, [1, vae.config.out_channels, s, s]);
    });
  });

  void it('vae-emoji and vq-emoji take 3x32x32 images to 4x8x8 latents and back; emoji-ldm works on them', () => {
    const unet = createModel(read('emoji-ldm')) as UNet2DConditionModel;
    noGrad(() => {
      for (const name of ['vae-emoji', 'vq-emoji']) {
        const vae = createModel(read(name), { generator: new Generator(1) });
        const x = randn([1, 3, 32, 32], { generator: new Generator(2) });
        let z: Tensor;
        let back: Tensor;
        if (vae instanceof AutoencoderKL) {
          assert.equal(vae.config.scaling_factor, 1, `${name}: scaling_factor 1 until trained`);
          z = vae.encode(x).mode();
          back = vae.decode(z);
        } else if (vae instanceof VQModel) {
          assert.equal(vae.config.scaling_factor, 1, `${name}: scaling_factor 1 until trained`);
          z = vae.encode(x);
          back = vae.decode(z).sample;
        } else {
          assert.fail(`${name} is a ${vae.className}`);
        }
        assert.deepEqual(z.shape, [1, 4, 8, 8], `${name}: latents`);
        assert.deepEqual(back.shape, [1, 3, 32, 32], `${name}: decoded`);
        const text = randn([1, 16, unet.config.cross_attention_dim as number], {
          generator: new Generator(3),
        });
        assert.deepEqual(unet.forward(z, 10, text).shape, z.shape, `emoji-ldm on ${name}`);
      }
    });
  });
});
