// generateAsync: the same images as generate (bit for bit) for deterministic, multistep and
// stochastic samplers under classifier-free guidance; progress after every step with x̂_0; the
// event loop runs between steps; an abort rejects with an AbortError and frees every tensor.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  classConditioning,
  createSampler,
  disposeConditioning,
  encodeConditions,
  generate,
  generateAsync,
  type GenerateOptions,
} from '../../src/diffusion/index.js';
import { cpuBackend, setDefaultBackend, Tensor } from '../../src/engine/index.js';
import { tinyUNet } from './train-setup.js';

const cpu = cpuBackend();
setDefaultBackend(cpu);

const model = tinyUNet(5, { num_class_embeds: 4 }).eval();

const schedule = { num_train_timesteps: 100 };
const { cond, uncond } = encodeConditions(
  classConditioning({ numClasses: 3, nullClassId: 3 }),
  { values: [0, 1, 2], guidanceScale: 2.5 },
  cpu,
);
const base: GenerateOptions = {
  n: 3,
  seed: 7,
  numInferenceSteps: 4,
  cond,
  uncond,
  guidanceScale: 2.5,
};

void describe('generateAsync', () => {
  for (const sampler of ['ddim', 'dpmpp-2m', 'euler-a', 'pndm']) {
    void test(`${sampler}: the same x_0 as generate, bit for bit`, async () => {
      const sync = generate(model, createSampler(sampler, schedule), base);
      const async_ = await generateAsync(model, createSampler(sampler, schedule), base);
      assert.deepEqual(async_.shape, [3, 1, 8, 8]);
      assert.deepEqual(async_.dataSync(), sync.dataSync());
      sync.dispose();
      async_.dispose();
    });
  }

  void test('reports every step with x̂_0 and lets timers run between steps', async () => {
    const seen: { step: number; total: number; t: number; shape: readonly number[] }[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const scheduler = createSampler('ddim', schedule);
    const x0 = await generateAsync(model, scheduler, {
      ...base,
      preview: true,
      onProgress: (p) => {
        assert.ok(p.preview !== null && !p.preview.isDisposed, 'a live preview');
        seen.push({ step: p.step, total: p.total, t: p.t, shape: p.preview.shape });
      },
    });
    clearInterval(timer);
    assert.deepEqual(
      seen.map((s) => [s.step, s.total, s.t]),
      [...scheduler.timesteps].map((t, i) => [i + 1, 4, t]),
    );
    for (const s of seen) assert.deepEqual(s.shape, [3, 1, 8, 8]);
    assert.ok(ticks >= 2, `a timer ran ${ticks} times during 4 steps`);
    x0.dispose();
  });

  void test('the last preview is x_0 for a sampler that predicts x̂_0 (DDIM, η = 0)', async () => {
    let last: Float32Array | null = null;
    const x0 = await generateAsync(model, createSampler('ddim', schedule), {
      ...base,
      preview: true,
      onProgress: (p) => {
        last = p.preview!.dataSync() as Float32Array;
      },
    });
    // DDIM's last step goes to ᾱ_prev = 1 (set_alpha_to_one), so x_{t-1} is x̂_0 itself.
    assert.deepEqual(last, x0.dataSync());
    x0.dispose();
  });

  void test('an abort mid-run rejects with an AbortError and frees every tensor', async () => {
    for (const sampler of ['dpmpp-2m', 'euler-a']) {
      const scheduler = createSampler(sampler, schedule);
      const before = Tensor.liveCount();
      const ac = new AbortController();
      let steps = 0;
      await assert.rejects(
        generateAsync(model, scheduler, {
          ...base,
          signal: ac.signal,
          preview: true,
          onProgress: (p) => {
            steps = p.step;
            if (p.step === 2) ac.abort();
          },
        }),
        (e: unknown) => e instanceof Error && e.name === 'AbortError',
      );
      assert.equal(steps, 2, `${sampler}: no step after the abort`);
      assert.equal(Tensor.liveCount(), before, `${sampler}: tensors left after the abort`);
      // The scheduler is usable again and gives the same images as a fresh one.
      const again = await generateAsync(model, scheduler, base);
      const fresh = generate(model, createSampler(sampler, schedule), base);
      assert.deepEqual(again.dataSync(), fresh.dataSync());
      again.dispose();
      fresh.dispose();
    }
  });

  void test('an aborted signal rejects before any step; a given reason is the rejection', async () => {
    const before = Tensor.liveCount();
    let called = false;
    await assert.rejects(
      generateAsync(model, createSampler('ddim', schedule), {
        ...base,
        signal: AbortSignal.abort(),
        onProgress: () => {
          called = true;
        },
      }),
      { name: 'AbortError' },
    );
    const ac = new AbortController();
    const reason = new Error('closed by the user');
    const run = generateAsync(model, createSampler('ddim', schedule), {
      ...base,
      signal: ac.signal,
    });
    ac.abort(reason);
    await assert.rejects(run, (e) => e === reason);
    assert.equal(called, false);
    assert.equal(Tensor.liveCount(), before);
  });

  void test('a throwing onProgress rejects with its error and frees every tensor', async () => {
    const before = Tensor.liveCount();
    await assert.rejects(
      generateAsync(model, createSampler('dpmpp-2m', schedule), {
        ...base,
        preview: true,
        onProgress: (p) => {
          if (p.step === 3) throw new Error('display failed');
        },
      }),
      /display failed/,
    );
    assert.equal(Tensor.liveCount(), before);
  });

  void test('the conditioning stays the caller’s', () => {
    for (const t of [cond.classLabels, uncond?.classLabels])
      assert.ok(t && !t.isDisposed, 'class labels alive');
    disposeConditioning(cond);
    if (uncond !== null) disposeConditioning(uncond);
  });
});
