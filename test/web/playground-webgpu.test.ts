// The playground on its WebGPU backend in headless Chromium (SwiftShader's software adapter where
// there is no GPU; the harness passes --enable-unsafe-webgpu): a small random UNet2DModel with
// mnist-small's kinds of blocks (resnets, attention in the lower level and the mid block), served
// as mnist-small, loads on webgpu and samples the grid Node samples on the CPU backend for the
// same weights, seed and sampler. A small model, because SwiftShader runs mnist-small itself at
// seconds a step here (docs/playground.md). Skipped, saying why, where Chromium is not installed
// or offers the page no WebGPU adapter.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { Page } from 'playwright-core';

import { decodePng, gridFromValues } from '../../src/data/image/index.js';
import { createSampler, generate, loadPipeline } from '../../src/diffusion/index.js';
import { cpuBackend, Generator, setDefaultBackend } from '../../src/engine/index.js';
import { createModel, saveModel } from '../../src/nn/models/index.js';
import {
  canvasPixels,
  chromiumMissing,
  downloadedPng,
  idleTensors,
  type Playground,
  startPlayground,
  waitForState,
} from '../../web/harness.js';

const skip = chromiumMissing() ?? false;
if (skip !== false) console.log(`# skipped: ${skip}`);

/** The page's settings: DDIM, 2 steps, 4 images of seed 0 (2 per row). */
const STEPS = 2;
const N = 4;
const SEED = 0;

/**
 * An unconditional 16×16 gray pipeline folder: a UNet2DModel of 8 and 16 channels drawn from a
 * fixed seed, with attention at the lower level and in the mid block as in mnist-small, and
 * mnist-small's scheduler.
 */
async function writeSmallModel(dir: string): Promise<string> {
  const unet = createModel(
    {
      _class_name: 'UNet2DModel',
      sample_size: 16,
      in_channels: 1,
      out_channels: 1,
      block_out_channels: [8, 16],
      layers_per_block: 1,
      norm_num_groups: 4,
      attention_head_dim: 8,
      down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
      up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
      add_attention: true,
    },
    { generator: new Generator(7) },
  );
  await saveModel(unet, join(dir, 'unet'));
  await mkdir(join(dir, 'scheduler'), { recursive: true });
  await cp('models/mnist-small/scheduler', join(dir, 'scheduler'), { recursive: true });
  await writeFile(
    join(dir, 'sumi.json'),
    JSON.stringify({
      format: 'sumi-model',
      version: 1,
      imageSize: 16,
      channels: 1,
      conditioning: 'none',
      conditionDropout: 0,
      numClasses: null,
      nullClassId: null,
      data: 'mnist',
      step: 0,
    }),
  );
  return dir;
}

/** The grid Node samples on the CPU backend for the page's settings. */
async function nodeGrid(dir: string): Promise<Uint8Array> {
  setDefaultBackend(cpuBackend());
  const p = await loadPipeline(dir);
  const x0 = generate(p.model, createSampler('ddim', p.schedulerConfig), {
    n: N,
    seed: SEED,
    numInferenceSteps: STEPS,
  });
  const grid = gridFromValues(x0.dataSync(), x0.shape, { nrow: 2 });
  x0.dispose();
  return grid.data as Uint8Array;
}

/** The adapter the page gets from navigator.gpu (vendor, architecture, description), or null. */
async function pageAdapter(page: Page): Promise<string | null> {
  return page.evaluate<string | null>(`(async () => {
    const a = await navigator.gpu?.requestAdapter();
    if (!a) return null;
    const i = a.info ?? {};
    return [i.vendor, i.architecture, i.description].filter((s) => s).join(' / ') || 'unnamed';
  })()`);
}

void describe('playground in Chromium: the WebGPU backend', { skip }, () => {
  let pg: Playground;
  let dir = '';
  let fixture = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sumi-playground-webgpu-'));
    fixture = await writeSmallModel(join(dir, 'mnist-small'));
    pg = await startPlayground({ modelDirs: { 'mnist-small': fixture } });
  });
  after(async () => {
    await pg?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('samples on webgpu: the grid Node samples on the CPU backend', async (t) => {
    const { page, errors } = await pg.open('model=mnist-small&backend=webgpu');
    const adapter = await pageAdapter(page);
    if (adapter === null) {
      t.skip('Chromium offers no WebGPU adapter here (navigator.gpu.requestAdapter() gave null)');
      return;
    }
    t.diagnostic(`WebGPU adapter: ${adapter}`);
    assert.equal(
      await waitForState(page, ['ready', 'error'], 120_000),
      'ready',
      (await page.textContent('#status')) ?? '',
    );
    const loadedStatus = (await page.textContent('#status')) ?? '';
    assert.match(loadedStatus, /on webgpu/);
    t.diagnostic(loadedStatus);
    const loaded = await idleTensors(page);
    await page.selectOption('#sampler', 'ddim');
    await page.fill('#steps', String(STEPS));
    await page.fill('#n', String(N));
    await page.fill('#seed', String(SEED));
    await page.click('#sample');
    assert.equal(
      await waitForState(page, ['done', 'error'], 240_000),
      'done',
      (await page.textContent('#status')) ?? '',
    );
    const doneStatus = (await page.textContent('#status')) ?? '';
    assert.match(doneStatus, /on webgpu/);
    t.diagnostic(doneStatus);
    const img = decodePng(await downloadedPng(page));
    assert.deepEqual([img.width, img.height, img.channels], [38, 38, 1]);
    const canvas = await canvasPixels(page);
    assert.deepEqual(canvas.red, [...img.data], 'the canvas shows the PNG');
    assert.ok(new Set(img.data).size > 50, 'a non-blank grid');
    // The WebGPU kernels against the CPU backend's: float32 both, summed in other orders, so a
    // value near a rounding boundary may land one gray level over.
    const expected = await nodeGrid(fixture);
    let worst = 0;
    let differ = 0;
    for (let i = 0; i < expected.length; i++) {
      const d = Math.abs(expected[i]! - img.data[i]!);
      worst = Math.max(worst, d);
      if (d > 0) differ++;
    }
    t.diagnostic(`max difference ${worst} gray levels; ${differ} of ${expected.length} differ`);
    assert.ok(worst <= 1, `WebGPU and Node grids differ by ${worst} gray levels`);
    assert.equal(await idleTensors(page), loaded, 'tensors left in the worker after sampling');
    assert.deepEqual(errors, []);
    await page.close();
  });
});
