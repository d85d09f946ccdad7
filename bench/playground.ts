/**
 * The playground in headless Chromium (never run as tests):
 *
 *   npm run bench:playground [-- --backend cpu|webgpu --steps 20 --n 16 --screenshot FILE]
 *                            [--train STEPS --train-screenshot FILE]
 *                            [--inpaint STEPS --inpaint-screenshot FILE]
 *
 * Builds the static site, serves it, and for mnist-small measures the page load (navigation to
 * the model loaded in the worker), then the first sample (DPM-Solver++ 2M, seed 0) and the mean
 * step after the first, as the page reports them, and the longest main-thread task while
 * sampling (PerformanceObserver 'longtask': tasks over 50 ms). With --screenshot, samples
 * mnist-cond (each class in turn, guidance 3) and saves a screenshot of the page. With --train,
 * trains the live-training panel's model for STEPS steps (batch 8, seed 0) and measures its
 * steps per second (from step 1 to step STEPS, before the one sample grid at STEPS) and the
 * longest main-thread task meanwhile; --train-screenshot saves those two panels after the grid.
 * With --inpaint, draws a 7 on the forward panel's canvas, masks its lower half and inpaints it
 * with mnist-small in STEPS steps (the page's sampler, DPM-Solver++ 2M, seed 0), measuring the
 * run from the click and the longest main-thread task; --inpaint-screenshot saves the forward and
 * inpainting panels afterwards.
 */
import { loadavg } from 'node:os';

import { pageStep, type Playground, startPlayground, waitForState } from '../web/harness.js';

const argv = process.argv.slice(2);
const arg = (name: string, dflt: string): string =>
  argv.includes(name) ? argv[argv.indexOf(name) + 1]! : dflt;
const backend = arg('--backend', 'cpu');
const steps = arg('--steps', '20');
const n = arg('--n', '16');
const screenshot = arg('--screenshot', '');
const trainSteps = Number(arg('--train', '0'));
const trainShot = arg('--train-screenshot', '');
const inpaintSteps = Number(arg('--inpaint', '0'));
const inpaintShot = arg('--inpaint-screenshot', '');

const LONG_TASKS = `window.__longest = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
}).observe({ type: 'longtask' });`;

async function main(): Promise<void> {
  const pg = await startPlayground();
  try {
    console.log(
      `build: ${Math.round(pg.buildMs)} ms; load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' / ')}`,
    );
    const t0 = performance.now();
    const { page, errors } = await pg.open(`model=mnist-small&backend=${backend}`);
    const state = await waitForState(page, ['ready', 'error']);
    const loadMs = performance.now() - t0;
    const status = await page.textContent('#status');
    if (state !== 'ready') throw new Error(`the page did not load the model: ${status}`);
    console.log(`page load to model ready: ${Math.round(loadMs)} ms (${status})`);
    await page.evaluate(LONG_TASKS);
    await page.fill('#steps', steps);
    await page.fill('#n', n);
    const t1 = performance.now();
    await page.click('#sample');
    if ((await waitForState(page, ['done', 'error'], 600_000)) !== 'done') {
      throw new Error(`sampling failed: ${await page.textContent('#status')}`);
    }
    const wall = performance.now() - t1;
    const longest = await page.evaluate<number>('window.__longest');
    console.log(
      `first sample, ${n} images × ${steps} steps (dpmpp-2m): ${Math.round(wall)} ms from the ` +
        `click; the page says "${await page.textContent('#status')}"; ${await pageStep(page)} ` +
        `preview frames; longest main-thread task while sampling: ${Math.round(longest)} ms`,
    );
    if (errors.length > 0) throw new Error(`page errors: ${errors.join('; ')}`);
    await page.close();
    if (screenshot !== '') {
      const shot = await pg.open(`model=mnist-cond&backend=${backend}`);
      await waitForState(shot.page, ['ready']);
      await shot.page.fill('#steps', steps);
      await shot.page.fill('#n', n);
      await shot.page.fill('#guidance', '3');
      await shot.page.click('#sample');
      await waitForState(shot.page, ['done'], 600_000);
      await shot.page.screenshot({ path: screenshot });
      console.log(`screenshot: ${screenshot} (${await shot.page.textContent('#status')})`);
    }
    if (trainSteps > 0) {
      const lab = await pg.open(`model=mnist-small&backend=${backend}`);
      const p = lab.page;
      await waitForState(p, ['ready']);
      await p.waitForSelector('#train-start:not([disabled])', { state: 'attached' });
      await p.evaluate(LONG_TASKS);
      await p.fill('#train-every', String(trainSteps));
      await p.click('#train-start');
      const atStep = async (k: number): Promise<number> => {
        await p.waitForFunction(`Number(document.body.dataset.trainStep) >= ${k}`, null, {
          timeout: 600_000,
          polling: 20,
        });
        return performance.now();
      };
      const t1 = await atStep(1);
      const tN = await atStep(trainSteps);
      await p.waitForFunction(
        `/after ${trainSteps} steps/.test(document.getElementById('train-grid-caption').textContent)`,
        null,
        { timeout: 120_000 },
      );
      const tGrid = performance.now();
      await p.click('#train-stop');
      await p.waitForSelector('body[data-train-state=stopped]', { state: 'attached' });
      const losses = await p.evaluate<number[]>('globalThis.playgroundLosses');
      const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
      const longest = await p.evaluate<number>('window.__longest');
      console.log(
        `live training (${backend}): ${((trainSteps - 1) / ((tN - t1) / 1000)).toFixed(2)} ` +
          `steps/s over steps 2..${trainSteps}; the sample grid (16 images, 10 DDIM steps) ` +
          `${Math.round(tGrid - tN)} ms; mean loss of the first 20 steps ` +
          `${mean(losses.slice(0, 20)).toFixed(4)}, of steps ${trainSteps - 19}..${trainSteps} ` +
          `${mean(losses.slice(trainSteps - 20, trainSteps)).toFixed(4)}; longest main-thread ` +
          `task: ${Math.round(longest)} ms`,
      );
      if (trainShot !== '') {
        // The forward-process and training panels, below the sampling controls.
        const top = await p.evaluate<number>(
          `document.getElementById('forward-panel').getBoundingClientRect().top + scrollY`,
        );
        const height = await p.evaluate<number>('document.documentElement.scrollHeight');
        await p.screenshot({
          path: trainShot,
          fullPage: true,
          clip: { x: 0, y: top, width: 1100, height: height - top },
        });
        console.log(`screenshot: ${trainShot}`);
      }
      if (lab.errors.length > 0) throw new Error(`page errors: ${lab.errors.join('; ')}`);
    }
    if (inpaintSteps > 0) await inpaintRun(pg);
  } finally {
    await pg.close();
  }
}

/** --inpaint: a drawn 7, its lower half repainted (see the module comment). */
async function inpaintRun(pg: Playground): Promise<void> {
  const { page: p, errors } = await pg.open(`model=mnist-small&backend=${backend}`);
  await waitForState(p, ['ready']);
  const canvas = p.locator('#fwd-draw');
  await canvas.scrollIntoViewIfNeeded();
  const box = (await canvas.boundingBox())!;
  const to = (x: number, y: number): Promise<void> =>
    p.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 8 });
  await to(0.28, 0.25);
  await p.mouse.down();
  await to(0.72, 0.25);
  await to(0.45, 0.8);
  await p.mouse.up();
  await p.waitForFunction('document.body.dataset.forwardSource === "drawing"');
  // A 28-pixel brush pressed at pixel (13, 27) covers rows 14 to 27: the lower half.
  await p.fill('#inp-brush', '28');
  const paint = p.locator('#inp-paint');
  await paint.scrollIntoViewIfNeeded();
  const pb = (await paint.boundingBox())!;
  await p.mouse.click(pb.x + (13.5 / 28) * pb.width, pb.y + (27.5 / 28) * pb.height);
  await p.fill('#steps', String(inpaintSteps));
  await p.evaluate(LONG_TASKS);
  const t0 = performance.now();
  await p.click('#inp-run');
  await p.waitForSelector('body[data-inpaint-state=done], body[data-inpaint-state=error]', {
    state: 'attached',
    timeout: 600_000,
  });
  const wall = performance.now() - t0;
  const status = await p.textContent('#inp-status');
  if ((await p.evaluate<string>('document.body.dataset.inpaintState')) !== 'done') {
    throw new Error(`inpainting failed: ${status}`);
  }
  const longest = await p.evaluate<number>('window.__longest');
  console.log(
    `inpainting (${backend}), ${inpaintSteps} steps on mnist-small: ${Math.round(wall)} ms from ` +
      `the click; the page says "${status}"; longest main-thread task: ${Math.round(longest)} ms; ` +
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' / ')}`,
  );
  if (inpaintShot !== '') {
    const rect = (id: string): Promise<{ top: number; bottom: number }> =>
      p.evaluate<{ top: number; bottom: number }>(`(() => {
        const r = document.getElementById('${id}').getBoundingClientRect();
        return { top: r.top + scrollY, bottom: r.bottom + scrollY };
      })()`);
    const top = (await rect('forward-panel')).top;
    const bottom = (await rect('inpaint-panel')).bottom;
    await p.screenshot({
      path: inpaintShot,
      fullPage: true,
      clip: { x: 0, y: top, width: 1100, height: bottom - top + 8 },
    });
    console.log(`screenshot: ${inpaintShot}`);
  }
  if (errors.length > 0) throw new Error(`page errors: ${errors.join('; ')}`);
}

await main();
