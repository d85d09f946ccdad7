// Batched generation: image k of a seed is the same picture whatever the number of images and the
// batch size, for deterministic and stochastic samplers; per-image noise streams.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  generateBatches,
  ImageNoise,
  createSampler,
  unconditional,
  checkSamplingSettings,
  SamplingOptionError,
} from '../../src/diffusion/index.js';
import { cpuBackend, randn, setDefaultBackend, tidy } from '../../src/engine/index.js';
import { tinyUNet } from './train-setup.js';

setDefaultBackend(cpuBackend());

const model = tinyUNet(3).eval();

/** The images of a run of n images in batches of `batchSize`, one Float32Array per image. */
async function images(
  sampler: string,
  n: number,
  batchSize: number,
  eta?: number,
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  await generateBatches(model, createSampler(sampler, { num_train_timesteps: 100 }), {
    seed: 11,
    numInferenceSteps: 3,
    batchSize,
    eta,
    condition: unconditional(),
    request: { values: Array.from({ length: n }, () => null) },
    onBatch: (x, batch) => {
      assert.deepEqual(x.shape, [batch.size, 1, 8, 8]);
      const v = x.dataSync() as Float32Array;
      for (let i = 0; i < batch.size; i++) out.push(v.slice(i * 64, (i + 1) * 64));
    },
  });
  return out;
}

void describe('batched generation', () => {
  for (const [sampler, eta] of [
    ['ddpm', undefined],
    ['ddim', 1],
    ['euler-a', undefined],
    ['dpmpp-2m-sde', undefined],
    ['dpmpp-2m', undefined],
  ] as const) {
    void test(`${sampler}${eta !== undefined ? ` η=${eta}` : ''}: image 2 of n=3 in batches of 2 is image 2 of n=8 in one batch`, async () => {
      const small = await images(sampler, 3, 2, eta);
      const large = await images(sampler, 8, 8, eta);
      assert.equal(small.length, 3);
      assert.equal(large.length, 8);
      assert.deepEqual(small[2], large[2]);
      assert.deepEqual(small[0], large[0]);
      assert.notDeepEqual(large[1], large[2]);
    });
  }
});

void test('onProgress reports every step of every batch; an abort stops between steps', async () => {
  const seen: string[] = [];
  const ac = new AbortController();
  let batches = 0;
  const run = generateBatches(model, createSampler('ddim', { num_train_timesteps: 100 }), {
    seed: 11,
    numInferenceSteps: 3,
    batchSize: 2,
    condition: unconditional(),
    request: { values: Array.from({ length: 5 }, () => null) },
    signal: ac.signal,
    onProgress: (pr, batch) => {
      seen.push(`${batch.index}/${batch.batches}:${pr.step}/${pr.total}`);
      if (batch.index === 1 && pr.step === 2) ac.abort();
    },
    onBatch: () => {
      batches++;
    },
  });
  await assert.rejects(run, { name: 'AbortError' });
  assert.deepEqual(seen, ['0/3:1/3', '0/3:2/3', '0/3:3/3', '1/3:1/3', '1/3:2/3']);
  assert.equal(batches, 1, 'only the first batch was finished');
});

void describe('ImageNoise', () => {
  void test('draw 0 is randn([n, C, H, W], { seed }) when C·H·W is a multiple of 4', () => {
    tidy(() => {
      const a = new ImageNoise(5, 0, 3, [1, 4, 4]).next();
      const b = randn([3, 1, 4, 4], { seed: 5 });
      assert.deepEqual(a.dataSync(), b.dataSync());
    });
  });

  void test('every draw of image k is the same in any range of images, C·H·W not a multiple of 4', () => {
    tidy(() => {
      const all = new ImageNoise(7, 0, 4, [1, 5, 5]);
      const one = new ImageNoise(7, 2, 1, [1, 5, 5]);
      for (let d = 0; d < 3; d++) {
        const a = all.next().dataSync();
        const b = one.next().dataSync();
        assert.deepEqual(b, a.slice(2 * 25, 3 * 25), `draw ${d}`);
        assert.notDeepEqual(a.slice(0, 25), a.slice(25, 50));
      }
    });
  });
});

void describe('sampling settings', () => {
  void test('η only for DDIM and in [0, 1]; guidance in [0, 100]; a batch of at least 1', () => {
    const problem = (name: string, s: Parameters<typeof checkSamplingSettings>[1]): string => {
      try {
        checkSamplingSettings(name, s);
        return '';
      } catch (e) {
        assert.ok(e instanceof SamplingOptionError, String(e));
        return `${e.option}: ${e.message}`;
      }
    };
    assert.equal(problem('ddim', { eta: 1, guidanceScale: 7.5, batchSize: 1 }), '');
    assert.equal(problem('euler', { eta: 0 }), "eta: η is for ddim; sampler 'euler' has no η");
    assert.match(problem('ddim', { eta: -1 }), /^eta: η must be from 0 .* to 1 .*, got -1$/);
    assert.match(
      problem('ddim', { guidanceScale: 1e300 }),
      /^guidanceScale: .* from 0 to 100 .*got 1e\+300$/,
    );
    assert.equal(
      problem('ddim', { guidanceRescale: 2 }),
      'guidanceRescale: the guidance rescale must be from 0 to 1, got 2',
    );
    assert.equal(
      problem('ddim', { batchSize: 0 }),
      'batchSize: the batch size must be at least 1, got 0',
    );
  });
});
