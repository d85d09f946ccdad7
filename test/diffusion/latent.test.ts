/**
 * Latent diffusion in the library: the latent cache round-trips (the encoder's posterior, byte
 * for byte), is encoded again when the data or the vae changed at a run's own path and refused at
 * a path the user named; a truncated or altered cache is one error and stays as it was; z is drawn
 * afresh each step from its own stream (a VQModel's is its latent); the model config is never
 * quietly rewritten (a 4-channel preset on 1-channel data without a vae, a U-Net whose in_channels
 * are not the vae's latent channels); a vae folder without scaling_factor is refused; a tiny
 * latent run resumes bit for bit and writes a pipeline folder whose samples decode to pixels.
 */
import assert from 'node:assert/strict';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { loadDataset, subsetDataset } from '../../src/data/index.js';
import {
  encodeImages,
  findCheckpoint,
  LatentError,
  loadPipeline,
  loadVae,
  openLatentCache,
  readLatentCache,
  resolveTrainConfig,
  runTraining,
  setUpTraining,
  TrainConfigError,
  generateBatches,
  createSampler,
} from '../../src/diffusion/index.js';
import { tensor } from '../../src/engine/index.js';
import { loadPreset } from '../../src/cli/presets.js';
import { trainFixture } from './train-setup.js';
import {
  TINY_LATENT_UNET,
  writeImageFolder,
  writeTinyKlVae,
  writeTinyVqVae,
} from './latent-setup.js';

const fx = trainFixture('sumi-latent-');

async function images(name: string, salt = 0): Promise<string> {
  return writeImageFolder(join(fx.dir, name), 16, salt);
}

void describe('the latent cache', () => {
  void test('round-trips: the posterior mean and log-variance of every image, read back as written', async () => {
    const v = await loadVae(await writeTinyKlVae(join(fx.dir, 'vae-rt')));
    const ds = loadDataset(await images('img-rt'), { size: 8, channels: 1 });
    const path = join(fx.dir, 'rt.safetensors');
    const lines: string[] = [];
    const made = await openLatentCache({
      path,
      explicit: false,
      vae: v,
      dataset: ds,
      flip: true,
      batchSize: 5,
      onMessage: (l) => lines.push(l),
    });
    assert.deepEqual(made.data.header.shape, [32, 2, 4, 4], 'images and their mirror images');
    assert.match(lines.join('\n'), /encoding 32 images/);
    const back = await readLatentCache(path);
    assert.deepEqual(back.header, made.data.header);
    assert.deepEqual(back.mean, made.data.mean);
    assert.deepEqual(back.logvar, made.data.logvar);
    // Image 3, encoded on its own, is entry 3.
    const x = tensor(
      ds.get(3).image.map((p) => 2 * p - 1),
      [1, 1, 8, 8],
    );
    const enc = encodeImages(v.vae, x);
    assert.deepEqual(await enc.mean.data(), made.data.mean.subarray(3 * 32, 4 * 32));
    assert.deepEqual(await enc.logvar!.data(), made.data.logvar!.subarray(3 * 32, 4 * 32));
    const again: string[] = [];
    await openLatentCache({
      path,
      explicit: true,
      vae: v,
      dataset: ds,
      flip: true,
      onMessage: (l) => again.push(l),
    });
    assert.match(again.join('\n'), /32 latents/, 'a fitting cache is read, not encoded');
  });

  void test('a stale cache is encoded again at the run path, refused at a named path', async () => {
    const v1 = await loadVae(await writeTinyKlVae(join(fx.dir, 'vae-s1'), { seed: 1 }));
    const v2 = await loadVae(await writeTinyKlVae(join(fx.dir, 'vae-s2'), { seed: 5 }));
    const ds = loadDataset(await images('img-s'), { size: 8, channels: 1 });
    const path = join(fx.dir, 'stale.safetensors');
    await openLatentCache({ path, explicit: false, vae: v1, dataset: ds, flip: false });
    const before = await readFile(path);
    await assert.rejects(
      openLatentCache({ path, explicit: true, vae: v2, dataset: ds, flip: false }),
      (e: unknown) =>
        e instanceof LatentError &&
        /another vae/.test(e.message) &&
        /vae weights sha256/.test(e.message),
    );
    assert.deepEqual(await readFile(path), before, 'the named file is left as it was');
    const other = loadDataset(await images('img-s2', 1), { size: 8, channels: 1 });
    await assert.rejects(
      openLatentCache({ path, explicit: true, vae: v1, dataset: other, flip: false }),
      /the images differ/,
    );
    const lines: string[] = [];
    const c = await openLatentCache({
      path,
      explicit: false,
      vae: v2,
      dataset: ds,
      flip: false,
      onMessage: (l) => lines.push(l),
    });
    assert.match(lines[0]!, /is stale \(vae weights sha256/);
    assert.equal(c.data.header.vae.sha256, v2.sha256);
    assert.equal((await readLatentCache(path)).header.vae.sha256, v2.sha256);
  });

  void test('a truncated or altered cache is one error, and nothing is overwritten', async () => {
    const v = await loadVae(await writeTinyKlVae(join(fx.dir, 'vae-c')));
    const ds = loadDataset(await images('img-c'), { size: 8, channels: 1 });
    const path = join(fx.dir, 'corrupt.safetensors');
    await openLatentCache({ path, explicit: false, vae: v, dataset: ds, flip: false });
    const bytes = await readFile(path);
    await truncate(path, bytes.length - 10);
    const cut = await readFile(path);
    for (const explicit of [false, true]) {
      await assert.rejects(
        openLatentCache({ path, explicit, vae: v, dataset: ds, flip: false }),
        (e: unknown) => e instanceof LatentError && /not a usable latent cache/.test(e.message),
      );
    }
    assert.deepEqual(await readFile(path), cut, 'the file is left as it was');
    const altered = Buffer.from(bytes);
    altered[altered.length - 3]! ^= 0x40;
    await writeFile(path, altered);
    await assert.rejects(readLatentCache(path), /does not match the sha256/);
  });

  void test('z = μ + σ·ε is drawn per step; a VQModel latent is its latent, scaled', async () => {
    const kl = await loadVae(
      await writeTinyKlVae(join(fx.dir, 'vae-z'), { scalingFactor: 0.5, shiftFactor: 0.25 }),
    );
    const ds = loadDataset(await images('img-z'), { size: 8, channels: 1 });
    const c = await openLatentCache({
      path: join(fx.dir, 'z.safetensors'),
      explicit: false,
      vae: kl,
      dataset: ds,
      flip: false,
    });
    const a = await c.latents([2, 5], [false, false], 11).data();
    const b = await c.latents([2, 5], [false, false], 11).data();
    const d = await c.latents([2, 5], [false, false], 12).data();
    assert.deepEqual(a, b, 'the same stream, the same draw');
    assert.notDeepEqual(a, d, 'another step, another draw');
    // Over many draws the mean of u = 0.5 (z − 0.25) approaches 0.5 (μ − 0.25).
    const mu = c.data.mean[2 * 32]!;
    let sum = 0;
    const n = 400;
    for (let s = 0; s < n; s++) sum += (await c.latents([2], [false], 1000 + s).data())[0]!;
    const sigma = 0.5 * Math.exp(0.5 * c.data.logvar![2 * 32]!);
    assert.ok(Math.abs(sum / n - 0.5 * (mu - 0.25)) < 4 * (sigma / Math.sqrt(n)), 'mean of u');

    const vq = await loadVae(await writeTinyVqVae(join(fx.dir, 'vae-vq')));
    const cv = await openLatentCache({
      path: join(fx.dir, 'vq.safetensors'),
      explicit: false,
      vae: vq,
      dataset: ds,
      flip: false,
    });
    assert.equal(cv.data.logvar, null);
    const u = await cv.latents([4], [false], 3).data();
    const h = cv.data.mean.subarray(4 * 32, 5 * 32);
    assert.deepEqual(
      Array.from(u),
      Array.from(h, (v) => Math.fround(1.5 * v)),
    );
  });
});

void describe('latent run configs', () => {
  void test('latent-small without --vae is refused, naming both channel counts', () => {
    const preset = loadPreset('latent-small');
    assert.throws(
      () =>
        resolveTrainConfig(
          { model: preset.model, scheduler: preset.scheduler, train: { data: 'mnist' } },
          subsetDataset(fx.mnist8, 8),
        ),
      (e: unknown) =>
        e instanceof TrainConfigError &&
        /in_channels is 4 but mnist images have 1 channel/.test(e.message) &&
        /--vae DIR/.test(e.message),
    );
  });

  void test("a U-Net whose in_channels are not the vae's latent channels is refused", async () => {
    const v = await loadVae(await writeTinyKlVae(join(fx.dir, 'vae-m')));
    assert.throws(
      () =>
        resolveTrainConfig(
          { model: { ...TINY_LATENT_UNET, in_channels: 4 }, scheduler: {}, train: { data: 'x' } },
          subsetDataset(fx.mnist8, 8),
          { ...v, dir: 'vae-m' },
        ),
      /in_channels is 4 but the vae vae-m makes 2-channel latents \(its latent_channels\)/,
    );
    const ok = resolveTrainConfig(
      { model: TINY_LATENT_UNET, scheduler: {}, train: { data: 'x' } },
      subsetDataset(fx.mnist8, 8),
      { ...v, dir: 'vae-m' },
    );
    assert.deepEqual(ok.latent?.shape, [2, 4, 4]);
    assert.equal(ok.model.sample_size, 4);
    assert.equal(ok.channels, 1);
  });

  void test('a vae folder without scaling_factor is refused', async () => {
    const dir = await writeTinyKlVae(join(fx.dir, 'vae-nosf'));
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    delete cfg.scaling_factor;
    await writeFile(join(dir, 'config.json'), JSON.stringify(cfg));
    await assert.rejects(
      loadVae(dir),
      (e: unknown) => e instanceof LatentError && /no scaling_factor/.test(e.message),
    );
  });
});

void describe('a tiny latent run', () => {
  const run = async (out: string, data: string, vae: string, steps: number, resume = false) => {
    const setup = await setUpTraining({
      outDir: out,
      resume,
      source: {
        label: 'tiny',
        config: { model: TINY_LATENT_UNET, scheduler: { num_train_timesteps: 100 }, train: {} },
      },
      train: { data, steps: 4, batchSize: 4, lr: 2e-3, warmupSteps: 1, flip: true, emaDecay: 0.9 },
      scheduler: {},
      vae,
    });
    try {
      await runTraining(setup.trainer, {
        outDir: out,
        stopAt: steps,
        settings: { saveEvery: 0, sampleEvery: 0 },
      });
    } finally {
      setup.trainer.dispose();
    }
  };
  const FILES = [
    'unet/diffusion_pytorch_model.safetensors',
    'unet_ema/diffusion_pytorch_model.safetensors',
    'optimizer.safetensors',
  ];

  void test('resumes bit for bit and samples pixels of the vae size through vae/', async () => {
    const data = await images('img-run');
    const vae = await writeTinyKlVae(join(fx.dir, 'vae-run'), { shiftFactor: 0.1 });
    const whole = join(fx.dir, 'whole');
    const halves = join(fx.dir, 'halves');
    await run(whole, data, vae, 4);
    await run(halves, data, vae, 2);
    await rm(join(halves, 'latents.safetensors')); // encoded again on resume: the same latents
    await run(halves, data, vae, 4, true);
    const a = (await findCheckpoint(whole))!;
    const b = (await findCheckpoint(halves))!;
    for (const f of FILES) {
      assert.ok(
        (await readFile(join(a, f))).equals(await readFile(join(b, f))),
        `${f} is the same`,
      );
    }
    assert.ok(
      (await readFile(join(a, 'vae/diffusion_pytorch_model.safetensors'))).equals(
        await readFile(join(vae, 'diffusion_pytorch_model.safetensors')),
      ),
      'the checkpoint carries the vae weights as given',
    );
    const index = JSON.parse(await readFile(join(a, 'model_index.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.deepEqual(index.vae, ['diffusers', 'AutoencoderKL']);
    const info = JSON.parse(await readFile(join(a, 'sumi.json'), 'utf8')) as {
      imageSize: number;
      channels: number;
      latent: { shape: number[] };
    };
    assert.deepEqual([info.imageSize, info.channels, info.latent.shape], [8, 1, [2, 4, 4]]);

    await assert.rejects(loadPipeline(whole), /a latent diffusion model/);
    const p = await loadPipeline(whole, { latent: true });
    assert.ok(p.vae !== null, 'the pipeline has its vae');
    const shapes: number[][] = [];
    let lo = Infinity;
    let hi = -Infinity;
    await generateBatches(p.model, createSampler('euler', p.schedulerConfig), {
      seed: 0,
      numInferenceSteps: 3,
      batchSize: 2,
      condition: p.condition,
      request: { values: [null, null, null] },
      decode: (z) => p.vae!.decode(z),
      onBatch: async (x) => {
        shapes.push([...x.shape]);
        for (const v of await x.data()) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      },
    });
    assert.deepEqual(shapes, [
      [2, 1, 8, 8],
      [1, 1, 8, 8],
    ]);
    assert.ok(lo >= -1 && hi <= 1, `decoded images are clamped to [-1, 1]: ${lo}..${hi}`);
  });

  void test('a VQModel run trains on its unquantized latents', async () => {
    const out = join(fx.dir, 'vq-run');
    await run(out, await images('img-vq'), await writeTinyVqVae(join(fx.dir, 'vae-vq-run')), 2);
    const info = JSON.parse(await readFile(join(out, 'checkpoint', 'sumi.json'), 'utf8')) as {
      latent: { kind: string; scalingFactor: number };
    };
    assert.deepEqual([info.latent.kind, info.latent.scalingFactor], ['vq', 1.5]);
  });
});
