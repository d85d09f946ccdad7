// The playground in headless Chromium (Debian's package, through playwright-core): the built page
// loads mnist-small on the CPU backend (WebAssembly in a Web Worker) and samples a grid equal to
// Node's for the same model, seed and sampler, and so does the class model mnist-cond-full with
// guidance; cancel stops a run; a model file that fails to load shows its message; the forward
// panel noises a digit; live training lowers the loss.
// Skipped, saying why, where Chromium is not installed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import type { Page } from 'playwright-core';

import { decodePng, gridFromValues } from '../../src/data/image/index.js';
import {
  createSampler,
  generate,
  generateBatches,
  loadPipeline,
} from '../../src/diffusion/index.js';
import { cpuBackend, setDefaultBackend } from '../../src/engine/index.js';
import {
  canvasPixels,
  chromiumMissing,
  downloadedPng,
  idleTensors,
  pageStep,
  type Playground,
  startPlayground,
  waitForState,
} from '../../web/harness.js';

const skip = chromiumMissing() ?? false;
if (skip !== false) console.log(`# skipped: ${skip}`);

/** The grid Node samples for the page's settings (DDIM, seed 0, 4 images, 2 per row). */
async function nodeGrid(steps: number): Promise<Uint8Array> {
  setDefaultBackend(cpuBackend());
  const p = await loadPipeline('models/mnist-small');
  const x0 = generate(p.model, createSampler('ddim', p.schedulerConfig), {
    n: 4,
    seed: 0,
    numInferenceSteps: steps,
  });
  const grid = gridFromValues(x0.dataSync(), x0.shape, { nrow: 2 });
  x0.dispose();
  return grid.data as Uint8Array;
}

void describe('playground in Chromium', { skip }, () => {
  let pg: Playground;
  // One page for sampling and cancelling (loading the model once).
  let page: Page;
  let errors: string[];
  /** The worker's live tensors with the model loaded (its parameters). */
  let loaded = 0;
  before(async () => {
    pg = await startPlayground();
    ({ page, errors } = await pg.open('model=mnist-small&backend=cpu'));
  });
  after(async () => {
    await pg?.close();
  });

  void test('samples mnist-small on the CPU backend: the grid Node samples', async () => {
    assert.equal(
      await waitForState(page, ['ready', 'error']),
      'ready',
      (await page.textContent('#status')) ?? '',
    );
    assert.match((await page.textContent('#status')) ?? '', /on cpu/);
    loaded = await idleTensors(page);
    await page.selectOption('#sampler', 'ddim');
    await page.fill('#steps', '2');
    await page.fill('#n', '4');
    await page.click('#sample');
    assert.equal(
      await waitForState(page, ['done', 'error']),
      'done',
      (await page.textContent('#status')) ?? '',
    );
    // The PNG behind the download link, and the canvas drawn from the same frame.
    const img = decodePng(await downloadedPng(page));
    assert.deepEqual([img.width, img.height, img.channels], [62, 62, 1]);
    const canvas = await canvasPixels(page);
    assert.deepEqual([canvas.width, canvas.height], [62, 62]);
    assert.deepEqual(canvas.red, [...img.data], 'the canvas shows the PNG');
    const levels = new Set(img.data);
    assert.ok(levels.size > 50, `a non-blank grid: ${levels.size} gray levels`);
    // Same model, seed and sampler in Node: the same picture within one gray level of rounding.
    const expected = await nodeGrid(2);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) {
      worst = Math.max(worst, Math.abs(expected[i]! - img.data[i]!));
    }
    assert.ok(worst <= 1, `browser and Node grids differ by ${worst} gray levels`);
    // Two frames were shown: x̂_0 after step 1, then x_0.
    assert.equal(await page.getAttribute('#frame', 'max'), '2');
    assert.equal(await idleTensors(page), loaded, 'tensors left in the worker after sampling');
    assert.deepEqual(errors, []);
  });

  void test('cancel stops a run between steps, freeing its tensors, and the page samples again', async () => {
    await page.selectOption('#sampler', 'dpmpp-2m'); // a sampler that holds a history
    await page.fill('#steps', '1000');
    await page.fill('#n', '1');
    await page.click('#sample');
    await page.waitForFunction('Number(document.body.dataset.step) >= 2', null, {
      timeout: 30_000,
    });
    await page.click('#cancel');
    assert.equal(await waitForState(page, ['cancelled', 'done', 'error']), 'cancelled');
    const step = await pageStep(page);
    assert.ok(step >= 2 && step < 1000, `stopped after step ${step} of 1000`);
    assert.equal(await page.isDisabled('#cancel'), true);
    assert.equal(await idleTensors(page), loaded, 'tensors left in the worker after the cancel');
    await page.fill('#steps', '1');
    await page.click('#sample');
    assert.equal(await waitForState(page, ['done', 'error']), 'done');
    assert.deepEqual(errors, []);
  });

  void test("the forward panel noises a digit by q(x_t | x_0) on the model's schedule", async () => {
    await page.waitForFunction('document.body.dataset.forwardT !== undefined');
    /** Mean |x_t − x_0| in gray levels with the slider at t. */
    const meanDiff = async (t: number): Promise<number> => {
      await page.evaluate(`(() => {
        const s = document.getElementById('fwd-t');
        s.value = '${t}';
        s.dispatchEvent(new Event('input'));
      })()`);
      await page.waitForFunction(`document.body.dataset.forwardT === '${t}'`);
      return page.evaluate<number>(`(() => {
        const px = (id) => { const c = document.getElementById(id); return c.getContext('2d').getImageData(0, 0, c.width, c.height).data; };
        const a = px('fwd-x0'), b = px('fwd-xt');
        let d = 0;
        for (let i = 0; i < a.length; i += 4) d += Math.abs(a[i] - b[i]);
        return d / (a.length / 4);
      })()`);
    };
    // √(1 − ᾱ_0) = 0.01: x_t is x_0 within a gray level or two; at t = 999 it is mostly noise.
    const near = await meanDiff(0);
    assert.ok(near < 2, `x_0 and x_t differ by ${near} gray levels on average at t = 0`);
    const far = await meanDiff(999);
    assert.ok(far > 40, `x_0 and x_t differ by ${far} gray levels on average at t = 999`);
    assert.match((await page.textContent('#fwd-t-label')) ?? '', /^999: ᾱ_t = 0\.0000/);
    assert.deepEqual(errors, []);
  });

  void test('live training on the CPU backend: the loss falls over 12 steps', async () => {
    await page.waitForSelector('#train-start:not([disabled])', { state: 'attached' });
    // A batch out of range is one line on the page, and nothing runs.
    await page.fill('#train-batch', '0');
    await page.click('#train-start');
    await page.waitForSelector('body[data-train-state=error]', { state: 'attached' });
    assert.equal(
      await page.textContent('#train-status'),
      'Batch must be a whole number from 1 to 64, got 0',
    );
    await page.fill('#train-batch', '8');
    await page.fill('#train-every', '1000'); // no sample grid within the test's steps
    await page.click('#train-start');
    await page.waitForFunction('Number(document.body.dataset.trainStep) >= 12', null, {
      timeout: 60_000,
    });
    await page.click('#train-stop');
    await page.waitForSelector('body[data-train-state=stopped]', { state: 'attached' });
    assert.match((await page.textContent('#train-status')) ?? '', /on cpu/);
    const losses = (await page.evaluate<number[]>('globalThis.playgroundLosses')).slice(0, 12);
    assert.equal(losses.length, 12);
    const mean = (a: number[]): number => a.reduce((p, c) => p + c, 0) / a.length;
    const first = mean(losses.slice(0, 4));
    const last = mean(losses.slice(-4));
    assert.ok(last < 0.6 * first, `mean loss of steps 1–4 ${first}, of steps 9–12 ${last}`);
    assert.deepEqual(errors, []);
  });

  void test('samples a class model (mnist-cond-full), each class in turn with guidance: the grid Node samples', async () => {
    const cls = await pg.open('model=mnist-cond-full&backend=cpu');
    const p = cls.page;
    assert.equal(
      await waitForState(p, ['ready', 'error']),
      'ready',
      (await p.textContent('#status')) ?? '',
    );
    assert.equal(
      await p.textContent('#model option[value=mnist-cond-full]'),
      'MNIST digits by class (trained on all of MNIST)',
    );
    // The class controls, with the model's class names; the guidance scale (it has a null class).
    assert.equal(await p.isVisible('#class'), true);
    assert.equal(await p.isVisible('#guidance'), true);
    assert.equal(await p.isVisible('#prompt'), false);
    const options = await p.evaluate<string[]>(
      `[...document.querySelectorAll('#class option')].map((o) => o.textContent)`,
    );
    assert.equal(options.length, 11);
    assert.equal(options[0], 'each class in turn');
    const idle = await idleTensors(p);
    await p.selectOption('#class', '-1');
    await p.selectOption('#sampler', 'ddim');
    await p.fill('#steps', '2');
    await p.fill('#n', '4');
    await p.fill('#seed', '3');
    await p.fill('#guidance', '2');
    await p.click('#sample');
    assert.equal(
      await waitForState(p, ['done', 'error'], 120_000),
      'done',
      (await p.textContent('#status')) ?? '',
    );
    const img = decodePng(await downloadedPng(p));
    assert.deepEqual([img.width, img.height, img.channels], [62, 62, 1]);
    // Node: the classes 0, 1, 2, 3 at w = 2 through generateBatches, same seed and sampler.
    setDefaultBackend(cpuBackend());
    const pipe = await loadPipeline('models/mnist-cond-full');
    let expected: Uint8Array | null = null;
    await generateBatches(pipe.model, createSampler('ddim', pipe.schedulerConfig), {
      condition: pipe.condition,
      request: { values: [0, 1, 2, 3], guidanceScale: 2 },
      batchSize: 4,
      seed: 3,
      numInferenceSteps: 2,
      onBatch: async (images) => {
        expected = gridFromValues(await images.data(), images.shape, { nrow: 2 })
          .data as Uint8Array;
      },
    });
    let worst = 0;
    for (let i = 0; i < img.data.length; i++) {
      worst = Math.max(worst, Math.abs(expected![i]! - img.data[i]!));
    }
    assert.ok(worst <= 1, `browser and Node grids differ by ${worst} gray levels`);
    // Unguided, the same seed gives another picture: the scale reaches the worker.
    await p.fill('#guidance', '1');
    await p.click('#sample');
    assert.equal(await waitForState(p, ['done', 'error'], 120_000), 'done');
    const unguided = decodePng(await downloadedPng(p));
    assert.notDeepEqual([...unguided.data], [...img.data]);
    assert.equal(await idleTensors(p), idle, 'tensors left in the worker after sampling');
    assert.deepEqual(cls.errors, []);
    await p.close();
  });

  void test('a model file that fails to load shows its message', async () => {
    const page = await pg.browser.newPage();
    await page.route('**/models/mnist-small/unet/config.json', (r) =>
      r.fulfill({ status: 404, body: 'missing' }),
    );
    await page.goto(`${pg.url}?model=mnist-small&backend=cpu`);
    assert.equal(await waitForState(page, ['ready', 'error']), 'error');
    assert.match(
      (await page.textContent('#status')) ?? '',
      /models\/mnist-small\/unet\/config\.json: HTTP 404/,
    );
    assert.equal(await page.isDisabled('#sample'), true);
    await page.close();
  });
});
