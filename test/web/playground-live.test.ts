// The model trained in the playground's tab, in headless Chromium (Debian's package, through
// playwright-core), CPU backend: after a few steps and Stop, "Sample from it" loads it into the
// sampling panel, which samples 14×14 digits with the same controls as the shipped models; the
// downloaded zip holds a pipeline folder that loadPipeline reads in Node, where the same sampler
// and seed give the page's grid. Skipped, saying why, where Chromium is not installed.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { unzipSync } from 'fflate';
import type { Page } from 'playwright-core';

import { decodePng, gridFromValues } from '../../src/data/image/index.js';
import { createSampler, generate, loadPipeline } from '../../src/diffusion/index.js';
import { cpuBackend, setDefaultBackend } from '../../src/engine/index.js';
import {
  chromiumMissing,
  downloadedPng,
  idleTensors,
  type Playground,
  startPlayground,
  waitForState,
} from '../../web/harness.js';

const skip = chromiumMissing() ?? false;
if (skip !== false) console.log(`# skipped: ${skip}`);

void describe('playground: the model trained in the tab', { skip }, () => {
  let pg: Playground;
  let page: Page;
  let errors: string[];
  const dir = mkdtempSync(join(tmpdir(), 'sumi-live-model-'));
  before(async () => {
    pg = await startPlayground();
    ({ page, errors } = await pg.open('model=mnist-small&backend=cpu'));
    assert.equal(await waitForState(page, ['ready', 'error']), 'ready');
  });
  after(async () => {
    await pg?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  void test('after Stop, the page samples from it with the sampling controls', async () => {
    await page.waitForSelector('#train-start:not([disabled])', { state: 'attached' });
    assert.equal(await page.isHidden('#live-model'), true, 'no model before training');
    await page.fill('#train-every', '1000');
    await page.click('#train-start');
    await page.waitForFunction('Number(document.body.dataset.trainStep) >= 6', null, {
      timeout: 60_000,
    });
    await page.click('#train-stop');
    await page.waitForFunction('document.body.dataset.liveModel !== undefined');
    const step = Number(await page.evaluate<string>('document.body.dataset.liveModel'));
    assert.ok(step >= 6, `the model of step ${step}`);
    await page.click('#live-sample');
    assert.equal(
      await waitForState(page, ['ready', 'error']),
      'ready',
      (await page.textContent('#status')) ?? '',
    );
    assert.equal(await page.inputValue('#model'), 'live');
    assert.match(
      (await page.textContent('#status')) ?? '',
      new RegExp(
        `^sumi-live-model \\(trained in this tab, step ${step}\\): 0\\.16 M parameters on cpu`,
      ),
    );
    const loaded = await idleTensors(page);
    await page.selectOption('#sampler', 'ddim');
    await page.fill('#steps', '2');
    await page.fill('#n', '4');
    await page.fill('#seed', '0');
    await page.click('#sample');
    assert.equal(await waitForState(page, ['done', 'error']), 'done');
    const img = decodePng(await downloadedPng(page));
    // 4 images of 14×14, 2 per row, 2 pixels of padding.
    assert.deepEqual([img.width, img.height, img.channels], [34, 34, 1]);
    assert.ok(new Set(img.data).size > 20, 'a non-blank grid');
    assert.equal(await idleTensors(page), loaded, 'tensors left in the worker after sampling');
    // The forward panel follows the model's size.
    await page.waitForFunction(
      "document.getElementById('fwd-x0').width === 14 && document.body.dataset.forwardT !== undefined",
    );
    assert.deepEqual(errors, []);
  });

  void test("the download is a pipeline folder that loadPipeline reads: Node samples the page's grid", async () => {
    const href = await page.getAttribute('#live-download', 'href');
    assert.ok(href?.startsWith('blob:'), `the download link is ${href}`);
    const name = await page.getAttribute('#live-download', 'download');
    assert.match(name ?? '', /^sumi-live-model-step-\d+\.zip$/);
    const zip = Uint8Array.from(
      await page.evaluate<number[]>(
        `(async () => [...new Uint8Array(await (await fetch(document.getElementById('live-download').href)).arrayBuffer())])()`,
      ),
    );
    const files = unzipSync(zip);
    assert.deepEqual(Object.keys(files).sort(), [
      'sumi-live-model/model_index.json',
      'sumi-live-model/scheduler/scheduler_config.json',
      'sumi-live-model/sumi.json',
      'sumi-live-model/unet/config.json',
      'sumi-live-model/unet/diffusion_pytorch_model.safetensors',
    ]);
    for (const [path, bytes] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), bytes);
    }
    setDefaultBackend(cpuBackend());
    const p = await loadPipeline(join(dir, 'sumi-live-model'));
    assert.equal(p.info?.imageSize, 14);
    assert.equal(p.condition.kind, 'none');
    const x0 = generate(p.model, createSampler('ddim', p.schedulerConfig), {
      n: 4,
      seed: 0,
      numInferenceSteps: 2,
    });
    const grid = gridFromValues(x0.dataSync(), x0.shape, { nrow: 2 }).data;
    const png = decodePng(await downloadedPng(page)).data;
    let worst = 0;
    for (let i = 0; i < grid.length; i++) worst = Math.max(worst, Math.abs(grid[i]! - png[i]!));
    assert.ok(worst <= 1, `the page's and Node's grids differ by ${worst} gray levels`);
  });
});
