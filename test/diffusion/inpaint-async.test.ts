/**
 * inpaintAsync, the cancellable form of `inpaint` the playground's worker runs: the same images
 * as `inpaint` for the same options (plain mask blending, RePaint resampling, the fixed known
 * noise, a latent model), a progress report after every model call, and a cancel that frees every
 * tensor the run made.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import {
  conditionedModel,
  createSampler,
  type DenoiseModel,
  ImageNoise,
  inpaint,
  inpaintAsync,
  type InpaintOptions,
  type LoadedPipeline,
  loadPipeline,
  repaintModelCalls,
  repaintSchedule,
} from '../../src/diffusion/index.js';
import { cpuBackend, randn, setDefaultBackend, Tensor, tensor } from '../../src/engine/index.js';
import { writeLatentPipeline } from './latent-editing-setup.js';
import { firstImages, tinyUNet, trainFixture } from './train-setup.js';

setDefaultBackend(cpuBackend());

const SCHEDULE = { num_train_timesteps: 100 };
const tiny = tinyUNet(3).eval();
const tinyModel: DenoiseModel = (x, t) => tiny.denoise(x, t);

function noiseOf(seed: number, shape: readonly number[] = [1, 8, 8]): () => Tensor {
  const noise = new ImageNoise(seed, 0, 2, shape);
  return () => noise.next();
}

/** Two 8×8 images in [−1, 1], and a mask repainting their lower half. */
const images = (): Tensor => randn([2, 1, 8, 8], { seed: 4 }).tanh();
const lowerHalf = (): Tensor =>
  tensor(
    Float32Array.from({ length: 64 }, (_, i) => (i >= 32 ? 1 : 0)),
    [1, 1, 8, 8],
  );

/** The length of a sampler's schedule of n steps. */
function schedulerSteps(sampler: string, n: number): number {
  const s = createSampler(sampler, SCHEDULE);
  s.setTimesteps(n);
  return s.timesteps.length;
}

const CASES: [string, Partial<InpaintOptions>][] = [
  ['ddim', {}],
  ['dpmpp-2m', {}],
  ['heun', {}],
  ['ddpm', { resample: 3, jumpLength: 2 }],
  ['ddim', { knownNoise: 'fixed' }],
];

void describe('inpaintAsync', () => {
  for (const [sampler, extra] of CASES) {
    void test(`${sampler} ${JSON.stringify(extra)}: the images inpaint gives, a report per model call`, async () => {
      const x0 = images();
      const mask = lowerHalf();
      const opts = (): InpaintOptions => ({
        mask,
        numInferenceSteps: 6,
        noise: noiseOf(2),
        ...extra,
      });
      const sync = inpaint(tinyModel, createSampler(sampler, SCHEDULE), x0, opts());
      const steps: number[] = [];
      let total = 0;
      const out = await inpaintAsync(tinyModel, createSampler(sampler, SCHEDULE), x0, {
        ...opts(),
        onProgress: (p) => {
          steps.push(p.step);
          total = p.total;
        },
      });
      assert.deepEqual(out.dataSync(), sync.dataSync());
      // Without resampling, every step of the sampler's schedule (Heun's holds its stages).
      const calls =
        extra.resample === undefined
          ? schedulerSteps(sampler, 6)
          : repaintModelCalls(repaintSchedule(6, extra.jumpLength ?? 1, extra.resample));
      assert.equal(total, calls);
      assert.deepEqual(
        steps,
        Array.from({ length: calls }, (_, i) => i + 1),
      );
      for (const t of [x0, mask, sync, out]) t.dispose();
    });
  }

  void test('an abort stops the run between steps and frees every tensor it made', async () => {
    const x0 = images();
    const mask = lowerHalf();
    const before = Tensor.liveCount();
    const ac = new AbortController();
    let seen = 0;
    // DPM-Solver++ 2M keeps the previous model output: the abort must free that history too.
    await assert.rejects(
      inpaintAsync(tinyModel, createSampler('dpmpp-2m', SCHEDULE), x0, {
        mask,
        numInferenceSteps: 10,
        noise: noiseOf(2),
        signal: ac.signal,
        onProgress: (p) => {
          seen = p.step;
          if (p.step === 3) ac.abort();
        },
      }),
      { name: 'AbortError' },
    );
    assert.equal(seen, 3);
    assert.equal(Tensor.liveCount(), before, 'tensors left after the abort');
    // An aborted signal refuses to start.
    await assert.rejects(
      inpaintAsync(tinyModel, createSampler('ddim', SCHEDULE), x0, {
        mask,
        numInferenceSteps: 2,
        noise: noiseOf(2),
        signal: AbortSignal.abort(),
      }),
      { name: 'AbortError' },
    );
    assert.equal(Tensor.liveCount(), before);
    x0.dispose();
    mask.dispose();
  });

  void test('a bad setting is refused before anything runs', async () => {
    await assert.rejects(
      inpaintAsync(tinyModel, createSampler('euler', SCHEDULE), images(), {
        mask: lowerHalf(),
        numInferenceSteps: 6,
        noise: noiseOf(2),
        resample: 2,
        jumpLength: 2,
      }),
      /needs a step that depends on its timestep only: ddpm or ddim, not EulerDiscreteScheduler/,
    );
  });
});

void describe('inpaintAsync on a latent model', () => {
  const fx = trainFixture('sumi-inpaint-async-');
  let p: LoadedPipeline;
  before(async () => {
    p = await loadPipeline(await writeLatentPipeline(join(fx.dir, 'ldm')), { latent: true });
  });

  void test('the images inpaint gives (latents blended, kept pixels pasted), and a clean abort', async () => {
    const model = conditionedModel(p.model, p.condition, [null, null], 1).model;
    const x0 = firstImages(fx.mnist8, 2);
    const mask = tensor(
      Float32Array.from({ length: 64 }, (_, i) => (i >= 24 ? 1 : 0)),
      [1, 1, 8, 8],
    );
    const opts = (): InpaintOptions => ({
      mask,
      numInferenceSteps: 4,
      noise: noiseOf(5, [2, 4, 4]),
      posteriorNoise: noiseOf(11, [2, 4, 4]),
      vae: p.vae,
    });
    const sync = inpaint(model, createSampler('ddim', p.schedulerConfig), x0, opts());
    const out = await inpaintAsync(model, createSampler('ddim', p.schedulerConfig), x0, opts());
    assert.deepEqual(out.dataSync(), sync.dataSync());
    const before = Tensor.liveCount();
    const ac = new AbortController();
    await assert.rejects(
      inpaintAsync(model, createSampler('ddim', p.schedulerConfig), x0, {
        ...opts(),
        signal: ac.signal,
        onProgress: () => ac.abort(),
      }),
      { name: 'AbortError' },
    );
    assert.equal(Tensor.liveCount(), before, 'tensors left after the abort');
  });
});
