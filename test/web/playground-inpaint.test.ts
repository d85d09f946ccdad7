// The playground's drawing canvas and inpainting panel in headless Chromium (Debian's package,
// through playwright-core), mnist-small on the CPU backend: strokes on the drawing canvas become
// the forward panel's x_0 (and its x_t); inpainting the lower half of a digit keeps the upper
// half's pixels exactly, repaints the lower half, and gives the image `inpaint` gives in Node for
// the same settings; a cancelled run frees every tensor it made; a sample just generated can be
// the input. Skipped, saying why, where Chromium is not installed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import type { Page } from 'playwright-core';

import { gridFromValues } from '../../src/data/image/index.js';
import { createSampler, ImageNoise, inpaint, loadPipeline } from '../../src/diffusion/index.js';
import { cpuBackend, setDefaultBackend, tensor } from '../../src/engine/index.js';
import {
  chromiumMissing,
  idleTensors,
  type Playground,
  startPlayground,
  waitForState,
} from '../../web/harness.js';

const skip = chromiumMissing() ?? false;
if (skip !== false) console.log(`# skipped: ${skip}`);

/** The red channel of every pixel of canvas #id (gray images), with its size. */
async function gray(
  page: Page,
  id: string,
): Promise<{ width: number; height: number; v: number[] }> {
  return page.evaluate<{ width: number; height: number; v: number[] }>(`(() => {
    const c = document.getElementById('${id}');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return { width: c.width, height: c.height, v: [...d.filter((_, i) => i % 4 === 0)] };
  })()`);
}

/** Sets an input's value as a person would (an 'input' event). */
async function slide(page: Page, id: string, value: number): Promise<void> {
  await page.evaluate(`(() => {
    const s = document.getElementById('${id}');
    s.value = '${value}';
    s.dispatchEvent(new Event('input'));
  })()`);
}

/** Presses the mouse at pixel (x, y) of a canvas of `side` pixels shown at its element's size. */
async function pressAt(page: Page, id: string, side: number, x: number, y: number): Promise<void> {
  await page.locator(`#${id}`).scrollIntoViewIfNeeded();
  const box = (await page.locator(`#${id}`).boundingBox())!;
  await page.mouse.click(
    box.x + ((x + 0.5) / side) * box.width,
    box.y + ((y + 0.5) / side) * box.height,
  );
}

/** Paints the lower half of a 28×28 image: one press of a 28-pixel brush at (13, 27). */
async function paintLowerHalf(page: Page): Promise<void> {
  await page.click('#inp-clear');
  await page.fill('#inp-brush', '28');
  await pressAt(page, 'inp-paint', 28, 13, 27);
}

void describe('playground: drawing and inpainting in Chromium', { skip }, () => {
  let pg: Playground;
  let page: Page;
  let errors: string[];
  /** The worker's live tensors with the model loaded (its parameters). */
  let loaded = 0;
  before(async () => {
    pg = await startPlayground();
    ({ page, errors } = await pg.open('model=mnist-small&backend=cpu'));
    assert.equal(await waitForState(page, ['ready', 'error']), 'ready');
    loaded = await idleTensors(page);
  });
  after(async () => {
    await pg?.close();
  });

  void test("strokes on the drawing canvas become the forward panel's x_0 and x_t", async () => {
    await page.waitForFunction('document.body.dataset.forwardSource === "digit"');
    const digit = await gray(page, 'fwd-x0');
    // A stroke across the middle of the 140×140 canvas (white on black by default).
    await page.locator('#fwd-draw').scrollIntoViewIfNeeded();
    const box = (await page.locator('#fwd-draw').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
    await page.mouse.down();
    for (let k = 1; k <= 10; k++) {
      await page.mouse.move(box.x + box.width * (0.2 + 0.06 * k), box.y + box.height * 0.5);
    }
    await page.mouse.up();
    await page.waitForFunction('document.body.dataset.forwardSource === "drawing"');
    const drawn = await gray(page, 'fwd-x0');
    assert.deepEqual([drawn.width, drawn.height], [28, 28]);
    assert.notDeepEqual(drawn.v, digit.v, 'x_0 is still the digit');
    // White along the stroke (rows 12–15 in the middle columns), black far from it.
    const at = (x: number, y: number): number => drawn.v[y * 28 + x]!;
    assert.ok(at(14, 14) > 200, `the stroke's middle pixel is ${at(14, 14)}`);
    assert.equal(at(14, 3), 0);
    assert.equal(at(14, 25), 0);
    // x_t at t = 0 is the drawing within a gray level or two (√(1 − ᾱ_0) = 0.01).
    await slide(page, 'fwd-t', 0);
    await page.waitForFunction('document.body.dataset.forwardT === "0"');
    const xt = await gray(page, 'fwd-xt');
    const mean = xt.v.reduce((a, v, i) => a + Math.abs(v - drawn.v[i]!), 0) / xt.v.length;
    assert.ok(mean < 2, `x_t at t = 0 differs from the drawing by ${mean} gray levels on average`);
    // Clear: a black x_0.
    await page.click('#fwd-draw-clear');
    await page.waitForFunction(`(() => {
      const c = document.getElementById('fwd-x0');
      return c.getContext('2d').getImageData(0, 0, 28, 28).data.every((v, i) => i % 4 === 3 || v === 0);
    })()`);
    assert.deepEqual(errors, []);
  });

  void test("inpainting the lower half keeps the upper half's pixels and repaints the rest, as Node does", async () => {
    await page.selectOption('#fwd-digit', '3');
    await page.waitForFunction('document.body.dataset.forwardSource === "digit"');
    await paintLowerHalf(page);
    const mask = await gray(page, 'inp-mask');
    assert.deepEqual(
      mask.v,
      Array.from({ length: 784 }, (_, i) => (i >= 392 ? 255 : 0)),
      'the mask is the lower half',
    );
    await page.selectOption('#sampler', 'ddim');
    await page.fill('#steps', '4');
    await page.fill('#seed', '0');
    await page.click('#inp-run');
    await page.waitForSelector('body[data-inpaint-state=done], body[data-inpaint-state=error]', {
      state: 'attached',
      timeout: 60_000,
    });
    assert.equal(
      await page.evaluate<string>('document.body.dataset.inpaintState'),
      'done',
      (await page.textContent('#inp-status')) ?? '',
    );
    assert.equal(await page.evaluate<string>('document.body.dataset.inpaintStep'), '4');
    const input = await gray(page, 'fwd-x0');
    const result = await gray(page, 'inp-result');
    assert.deepEqual([result.width, result.height], [28, 28]);
    // Kept: every pixel of the upper half is the input's (the blending's last step is exact).
    assert.deepEqual(result.v.slice(0, 392), input.v.slice(0, 392));
    let changed = 0;
    for (let i = 392; i < 784; i++) if (Math.abs(result.v[i]! - input.v[i]!) > 8) changed++;
    assert.ok(changed > 50, `${changed} of 392 repainted pixels differ from the input`);
    // Node: the same pipeline on the same image, mask, noise and sampler.
    setDefaultBackend(cpuBackend());
    const p = await loadPipeline('models/mnist-small');
    const noise = new ImageNoise(0, 0, 1, p.model.sampleShape);
    const image = tensor(
      Float32Array.from(input.v, (v) => (v / 255) * 2 - 1),
      [1, 1, 28, 28],
    );
    const m = tensor(
      Float32Array.from({ length: 784 }, (_, i) => (i >= 392 ? 1 : 0)),
      [1, 1, 28, 28],
    );
    const x = inpaint(
      (xt, t) => p.model.denoise(xt, t),
      createSampler('ddim', p.schedulerConfig),
      image,
      {
        mask: m,
        numInferenceSteps: 4,
        noise: () => noise.next(),
      },
    );
    const node = gridFromValues(x.dataSync(), x.shape, { padding: 0 }).data;
    let worst = 0;
    for (let i = 0; i < 784; i++) worst = Math.max(worst, Math.abs(node[i]! - result.v[i]!));
    assert.ok(worst <= 1, `the page's and Node's results differ by ${worst} gray levels`);
    assert.equal(await idleTensors(page), loaded, 'tensors left in the worker after inpainting');
    assert.deepEqual(errors, []);
  });

  void test('cancel stops an inpainting run between steps and frees every tensor it made', async () => {
    await page.selectOption('#sampler', 'dpmpp-2m'); // a sampler that holds a history
    await page.fill('#steps', '1000');
    await page.click('#inp-run');
    assert.equal(await page.isDisabled('#sample'), true, 'sampling waits while inpainting');
    await page.waitForFunction('Number(document.body.dataset.inpaintStep) >= 2', null, {
      timeout: 30_000,
    });
    await page.click('#inp-cancel');
    await page.waitForSelector('body[data-inpaint-state=cancelled]', { state: 'attached' });
    const step = Number(await page.evaluate<string>('document.body.dataset.inpaintStep'));
    assert.ok(step >= 2 && step < 1000, `stopped after step ${step} of 1000`);
    assert.equal(await idleTensors(page), loaded, 'tensors left in the worker after the cancel');
    assert.equal(await page.isDisabled('#sample'), false);
    assert.deepEqual(errors, []);
  });

  void test('a sample just generated is an input too', async () => {
    await page.selectOption('#sampler', 'ddim');
    await page.fill('#steps', '2');
    await page.fill('#n', '4');
    await page.click('#sample');
    assert.equal(await waitForState(page, ['done', 'error']), 'done');
    await page.selectOption('#inp-source', '1');
    await paintLowerHalf(page);
    // The input shown under the mask is sample 2 of the grid (2 per row, 2 pixels of padding).
    const grid = await gray(page, 'grid');
    const paint = await gray(page, 'inp-paint');
    for (let y = 0; y < 14; y++) {
      for (let x = 0; x < 28; x++) {
        assert.equal(
          paint.v[y * 28 + x],
          grid.v[(2 + y) * grid.width + 32 + x],
          `pixel ${x}, ${y}`,
        );
      }
    }
    await page.click('#inp-run');
    await page.waitForSelector('body[data-inpaint-state=done], body[data-inpaint-state=error]', {
      state: 'attached',
      timeout: 60_000,
    });
    assert.equal(await page.evaluate<string>('document.body.dataset.inpaintState'), 'done');
    const result = await gray(page, 'inp-result');
    for (let y = 0; y < 14; y++) {
      for (let x = 0; x < 28; x++) {
        assert.equal(result.v[y * 28 + x], paint.v[y * 28 + x], `kept pixel ${x}, ${y}`);
      }
    }
    assert.deepEqual(errors, []);
  });
});
