// The playground on a latent model, in headless Chromium: a tiny random text-to-image latent
// pipeline (an AutoencoderKL of 16×16 RGB images into 4×4×4 latents, a UNet2DConditionModel,
// mnist-text's tokenizer and text encoder) served as models/emoji-ldm loads on the CPU backend
// with its vae, and its decoded samples and decoded x̂_0 frames are the pixels Node computes
// for the same settings (generateBatches / generateAsync with `decode`); the page says that the
// frames are decoded and that the forward panel stays in pixel space; a model missing from the
// build is listed and refused with a message. When models/emoji-ldm exists, the shipped model is
// sampled too. Skipped, saying why, where Chromium is not installed.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { Page } from 'playwright-core';

import { decodePng, gridFromValues } from '../../src/data/image/index.js';
import {
  createSampler,
  encodeConditions,
  disposeConditioning,
  generateAsync,
  generateBatches,
  type LoadedPipeline,
  loadPipeline,
} from '../../src/diffusion/index.js';
import { cpuBackend, Generator, setDefaultBackend } from '../../src/engine/index.js';
import { AutoencoderKL, createModel, saveModel } from '../../src/nn/models/index.js';
import {
  chromiumMissing,
  downloadedPng,
  idleTensors,
  type Playground,
  startPlayground,
  waitForState,
} from '../../web/harness.js';
import { TINY_TEXT_UNET } from '../diffusion/train-setup.js';

const skip = chromiumMissing() ?? false;
if (skip !== false) console.log(`# skipped: ${skip}`);
const SHIPPED = 'models/emoji-ldm';
const shipped = existsSync(SHIPPED) ? false : `${SHIPPED} is not there (yet)`;
if (skip === false && shipped !== false) console.log(`# shipped model skipped: ${shipped}`);

/**
 * A text-to-image latent pipeline folder as 'sumi train --vae' writes one, untrained: vae/ (16×16
 * RGB images, three levels: 4×4×4 latents, scaling 0.8, shift 0.1), unet/ on those latents with
 * cross-attention of width 64, mnist-text's tokenizer/, text_encoder/ and scheduler/, sumi.json
 * with its `latent` record.
 */
async function writeLatentTextPipeline(dir: string): Promise<string> {
  const vae = new AutoencoderKL(
    {
      in_channels: 3,
      out_channels: 3,
      latent_channels: 4,
      sample_size: 16,
      block_out_channels: [8, 8, 8],
      down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
      up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
      norm_num_groups: 4,
      scaling_factor: 0.8,
      shift_factor: 0.1,
    },
    { generator: new Generator(1) },
  );
  await saveModel(vae, join(dir, 'vae'));
  const unet = createModel(
    { ...TINY_TEXT_UNET, sample_size: 4, in_channels: 4, out_channels: 4, cross_attention_dim: 64 },
    { generator: new Generator(3) },
  );
  await saveModel(unet, join(dir, 'unet'));
  for (const d of ['tokenizer', 'text_encoder', 'scheduler']) {
    await cp(join('models/mnist-text', d), join(dir, d), { recursive: true });
  }
  await writeFile(
    join(dir, 'sumi.json'),
    JSON.stringify({
      format: 'sumi-model',
      version: 1,
      imageSize: 16,
      channels: 3,
      conditioning: 'text',
      conditionDropout: 0.1,
      numClasses: null,
      nullClassId: null,
      latent: {
        vae: 'vae',
        kind: 'kl',
        vaeClass: 'AutoencoderKL',
        scalingFactor: 0.8,
        shiftFactor: 0.1,
        vaeSha256: '',
        shape: [4, 4, 4],
      },
    }),
  );
  return dir;
}

interface Settings {
  prompt: string;
  guidance: number;
  steps: number;
  n: number;
  seed: number;
}

/** The weights the page loads (unet/ and text_encoder/, not their EMA twins), on the CPU. */
async function nodePipeline(dir: string): Promise<LoadedPipeline> {
  setDefaultBackend(cpuBackend());
  return loadPipeline(dir, { latent: true, weights: 'model' });
}

/** The grid Node samples for the page's settings (DDIM): generateBatches decoding through the vae. */
async function nodeGrid(p: LoadedPipeline, s: Settings): Promise<Uint8Array> {
  let grid: Uint8Array | null = null;
  await generateBatches(p.model, createSampler('ddim', p.schedulerConfig), {
    condition: p.condition,
    request: { values: new Array<string>(s.n).fill(s.prompt), guidanceScale: s.guidance },
    batchSize: s.n,
    seed: s.seed,
    numInferenceSteps: s.steps,
    decode: (z) => p.vae!.decode(z),
    onBatch: async (images) => {
      const nrow = Math.ceil(Math.sqrt(s.n));
      grid = gridFromValues(await images.data(), images.shape, { nrow }).data as Uint8Array;
    },
  });
  return grid!;
}

/** The grid of Node's decoded x̂_0 after step 1 (what the page shows as its first frame). */
async function nodeFirstFrame(p: LoadedPipeline, s: Settings): Promise<Uint8Array> {
  const backend = p.model.parameters()[0]!.backend;
  const { cond, uncond } = encodeConditions(
    p.condition,
    { values: new Array<string>(s.n).fill(s.prompt), guidanceScale: s.guidance },
    backend,
  );
  let grid: Uint8Array | null = null;
  try {
    const x0 = await generateAsync(p.model, createSampler('ddim', p.schedulerConfig), {
      n: s.n,
      seed: s.seed,
      numInferenceSteps: s.steps,
      cond,
      uncond,
      guidanceScale: s.guidance,
      preview: true,
      decode: (z) => p.vae!.decode(z),
      onProgress: async (pr) => {
        if (pr.step !== 1) return;
        const nrow = Math.ceil(Math.sqrt(s.n));
        grid = gridFromValues(await pr.preview!.data(), pr.preview!.shape, { nrow })
          .data as Uint8Array;
      },
    });
    x0.dispose();
  } finally {
    disposeConditioning(cond);
    if (uncond !== null) disposeConditioning(uncond);
  }
  return grid!;
}

/** The grid canvas: its size and the R, G, B of every pixel. */
async function canvasRgb(page: Page): Promise<{ width: number; height: number; rgb: number[] }> {
  return page.evaluate<{ width: number; height: number; rgb: number[] }>(`(() => {
    const c = document.getElementById('grid');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return { width: c.width, height: c.height, rgb: [...d.filter((_, i) => i % 4 !== 3)] };
  })()`);
}

function worstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Samples on the page with DDIM and `s`; returns the downloaded PNG, checked against the canvas. */
async function sampleOnPage(page: Page, s: Settings): Promise<ReturnType<typeof decodePng>> {
  await page.selectOption('#sampler', 'ddim');
  await page.fill('#steps', String(s.steps));
  await page.fill('#n', String(s.n));
  await page.fill('#seed', String(s.seed));
  await page.fill('#guidance', String(s.guidance));
  await page.fill('#prompt', s.prompt);
  await page.click('#sample');
  assert.equal(
    await waitForState(page, ['done', 'error'], 120_000),
    'done',
    (await page.textContent('#status')) ?? '',
  );
  const img = decodePng(await downloadedPng(page));
  const canvas = await canvasRgb(page);
  assert.deepEqual([canvas.width, canvas.height], [img.width, img.height]);
  assert.deepEqual(canvas.rgb, [...img.data], 'the canvas shows the PNG');
  return img;
}

void describe('playground in Chromium: a latent model', { skip }, () => {
  let pg: Playground;
  let dir = '';
  let fixture = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sumi-playground-latent-'));
    fixture = await writeLatentTextPipeline(join(dir, 'emoji-ldm'));
    // The fixture as emoji-ldm; mnist-cond's folder missing, as a model not yet trained would be.
    pg = await startPlayground({
      modelDirs: { 'emoji-ldm': fixture, 'mnist-cond': join(dir, 'absent') },
    });
  });
  after(async () => {
    await pg?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('samples decoded RGB images and decoded x̂_0 frames: the pixels Node computes', async () => {
    const { page, errors } = await pg.open('model=emoji-ldm&backend=cpu');
    assert.equal(
      await waitForState(page, ['ready', 'error']),
      'ready',
      (await page.textContent('#status')) ?? '',
    );
    // The page says what it shows: latents decoded; the forward panel in pixels.
    assert.equal(await page.isVisible('#latent-note'), true);
    assert.match(
      (await page.textContent('#latent-note')) ?? '',
      /4×4×4 latents.*decoded by its AutoencoderKL to RGB 16×16 images/,
    );
    assert.equal(await page.isVisible('#fwd-note'), true);
    assert.match((await page.textContent('#fwd-note')) ?? '', /pixels .* not to those latents/);
    // The text controls, with this model's first prompt.
    assert.equal(await page.isVisible('#prompt'), true);
    assert.equal(await page.isVisible('#guidance'), true);
    assert.equal(await page.inputValue('#prompt'), 'smiling face with smiling eyes');
    const loaded = await idleTensors(page);

    const s: Settings = { prompt: 'a handwritten three', guidance: 3, steps: 2, n: 4, seed: 5 };
    const img = await sampleOnPage(page, s);
    // 4 images of 16×16 RGB, 2 per row, 2 pixels apart.
    assert.deepEqual([img.width, img.height, img.channels], [38, 38, 3]);
    assert.ok(new Set(img.data).size > 50, 'a non-blank grid');
    const p = await nodePipeline(fixture);
    const expected = await nodeGrid(p, s);
    const worst = worstDiff(expected, img.data);
    assert.ok(worst <= 1, `browser and Node grids differ by ${worst} levels`);
    // Frame 0 is x̂_0 after step 1, decoded: Node's decoded preview of that step.
    assert.equal(await page.getAttribute('#frame', 'max'), '2');
    await page.evaluate(`(() => {
      const s = document.getElementById('frame');
      s.value = '0';
      s.dispatchEvent(new Event('input'));
    })()`);
    const first = await canvasRgb(page);
    assert.deepEqual([first.width, first.height], [38, 38]);
    const expectedFirst = await nodeFirstFrame(p, s);
    const worstFirst = worstDiff(expectedFirst, first.rgb);
    assert.ok(worstFirst <= 1, `browser and Node first frames differ by ${worstFirst} levels`);
    assert.equal(await idleTensors(page), loaded, 'tensors left in the worker after sampling');

    // Switching to a pixel model frees the vae with the rest: as many tensors as a fresh load.
    const fresh = await pg.open('model=mnist-small&backend=cpu');
    assert.equal(await waitForState(fresh.page, ['ready', 'error']), 'ready');
    const small = await idleTensors(fresh.page);
    await fresh.page.close();
    await page.evaluate(`delete document.body.dataset.liveTensors`);
    await page.selectOption('#model', 'mnist-small');
    assert.equal(await waitForState(page, ['ready', 'error']), 'ready');
    assert.equal(await idleTensors(page), small, 'tensors left after switching models');
    assert.equal(await page.isVisible('#latent-note'), false);
    assert.equal(await page.isVisible('#fwd-note'), false);
    assert.deepEqual(errors, []);
    await page.close();
  });

  void test('a model missing from the build is listed as such and refused with a message', async () => {
    const { page } = await pg.open('model=mnist-cond&backend=cpu');
    assert.equal(await waitForState(page, ['ready', 'error']), 'error');
    assert.equal(
      await page.textContent('#status'),
      'mnist-cond is not in this build of the playground: models/mnist-cond/ was not in the ' +
        'repository when the site was built or served',
    );
    assert.equal(await page.isDisabled('#sample'), true);
    assert.match(
      (await page.textContent('#model option[value=mnist-cond]')) ?? '',
      /: not in this build$/,
    );
    await page.close();
    // A listed model whose sumi.json is gone from the server says so too.
    const gone = await pg.browser.newPage();
    await gone.route('**/models/emoji-ldm/sumi.json', (r) =>
      r.fulfill({ status: 404, body: 'missing' }),
    );
    await gone.goto(`${pg.url}?model=emoji-ldm&backend=cpu`);
    assert.equal(await waitForState(gone, ['ready', 'error']), 'error');
    assert.match(
      (await gone.textContent('#status')) ?? '',
      /models\/emoji-ldm\/sumi\.json: HTTP 404: this site has no emoji-ldm/,
    );
    await gone.close();
  });
});

void describe('playground in Chromium: the shipped emoji-ldm', { skip: skip || shipped }, () => {
  let pg: Playground;
  before(async () => {
    pg = await startPlayground();
  });
  after(async () => {
    await pg?.close();
  });

  void test('samples 32×32 RGB emoji: the grid Node samples', async () => {
    const { page, errors } = await pg.open('model=emoji-ldm&backend=cpu');
    assert.equal(
      await waitForState(page, ['ready', 'error'], 120_000),
      'ready',
      (await page.textContent('#status')) ?? '',
    );
    assert.match((await page.textContent('#latent-note')) ?? '', /RGB 32×32 images/);
    const s: Settings = {
      prompt: 'smiling face with smiling eyes',
      guidance: 3,
      steps: 2,
      n: 2,
      seed: 0,
    };
    const img = await sampleOnPage(page, s);
    assert.deepEqual([img.width, img.height, img.channels], [70, 36, 3]);
    const expected = await nodeGrid(await nodePipeline(SHIPPED), s);
    const worst = worstDiff(expected, img.data);
    assert.ok(worst <= 1, `browser and Node grids differ by ${worst} levels`);
    assert.deepEqual(errors, []);
  });
});
