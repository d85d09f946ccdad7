/**
 * The inpainting U-Net shipped in models/mnist-inpaint/ (sumi train --task inpaint on MNIST): it
 * loads only for inpainting, records its training command and masks, keeps the known pixels of
 * the image exactly, and fills brush strokes over held-out digits back in closer to the digit
 * than leaving them erased (N digits, one training-style brush mask each, 10 DDIM steps; classes by
 * models/mnist-eval; docs/editing.md measures 500 digits).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { loadMnist } from '../../src/data/index.js';
import {
  createSampler,
  disposeConditioning,
  encodeConditions,
  holdoutSplit,
  ImageNoise,
  inpaintWithModel,
  loadClassifier,
  loadPipeline,
  MASK_DRAWS,
  randomMask,
} from '../../src/diffusion/index.js';
import { cpuBackend, rand, tensor } from '../../src/engine/index.js';
import { evalClassifier, FeatureCollector } from '../../src/eval/index.js';

const DIR = join(REPO_ROOT, 'models', 'mnist-inpaint');
const N = 16;

/** N digits the evaluation classifier held out, spread over them, in [−1, 1], with their labels. */
function heldOut(): { values: Float32Array; labels: number[] } {
  const ds = loadMnist();
  const { heldOut: idx } = holdoutSplit(ds, 0.1, 0);
  const values = new Float32Array(N * 784);
  const labels: number[] = [];
  for (let k = 0; k < N; k++) {
    const item = ds.get(idx[Math.floor((k * idx.length) / N)]!);
    labels.push(item.label!);
    for (let i = 0; i < 784; i++) values[k * 784 + i] = item.image[i]! * 2 - 1;
  }
  return { values, labels };
}

async function classify(values: Float32Array): Promise<Int32Array> {
  const col = new FeatureCollector(
    await evalClassifier(await loadClassifier(join(REPO_ROOT, 'models', 'mnist-eval'))),
  );
  col.add(tensor(values, [N, 1, 28, 28]), 'digits');
  return col.finish().predicted;
}

const kept = (pred: Int32Array, labels: number[]): number =>
  labels.filter((y, k) => pred[k] === y).length;

void describe('models/mnist-inpaint', () => {
  void test('is an inpainting folder with its training command', async () => {
    for (const f of ['unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'sumi.json']) {
      assert.ok(existsSync(join(DIR, f)), `models/mnist-inpaint/${f} is missing`);
    }
    const info = JSON.parse(readFileSync(join(DIR, 'sumi.json'), 'utf8')) as {
      command?: string;
      inpaint?: unknown;
    };
    assert.match(info.command ?? '', /^sumi train .*--task inpaint .*--steps 3500/);
    assert.deepEqual(info.inpaint, { masks: ['rectangle', 'brush'] });
    await assert.rejects(loadPipeline(DIR), /an inpainting model \(sumi\.json "inpaint"\)/);
  });

  void test('fills brush strokes back in as the digit and keeps the other pixels', async () => {
    const p = await loadPipeline(DIR, { tasks: ['inpaint'] });
    const { values, labels } = heldOut();
    // One brush mask per digit, from the training masks' generator (1 = repaint).
    const u = rand([N * MASK_DRAWS], { seed: 0, dtype: 'float64' }).dataSync();
    const m = new Float32Array(N * 784);
    for (let k = 0; k < N; k++) {
      m.set(
        randomMask(u.subarray(k * MASK_DRAWS, (k + 1) * MASK_DRAWS), 28, 28, ['brush']),
        k * 784,
      );
    }
    const noise = new ImageNoise(0, 0, N, [1, 28, 28]);
    const { cond } = encodeConditions(
      p.condition,
      { values: labels.map(() => null) },
      cpuBackend(),
    );
    const out = inpaintWithModel(
      p.model,
      createSampler('ddim', p.schedulerConfig),
      tensor(values, [N, 1, 28, 28]),
      {
        mask: tensor(m, [N, 1, 28, 28]),
        numInferenceSteps: 10,
        guidance: { cond },
        noise: () => noise.next(),
      },
    ).dataSync();
    disposeConditioning(cond);
    let sqModel = 0;
    let sqErased = 0;
    for (let i = 0; i < N * 784; i++) {
      if (m[i] === 0) {
        assert.equal(out[i], values[i], `kept pixel ${i} changed`);
      } else {
        sqModel += (Math.min(1, Math.max(-1, out[i]!)) - values[i]!) ** 2;
        sqErased += (-1 - values[i]!) ** 2;
      }
    }
    const erased = Float32Array.from(values, (v, i) => (m[i] === 1 ? -1 : v));
    const completed = Float32Array.from(out, (v) => Math.min(1, Math.max(-1, v)));
    const byErased = kept(await classify(erased), labels);
    const byModel = kept(await classify(completed), labels);
    // Measured: 836 against 1,519 (0.55×); class kept 14/16, erased 12/16.
    assert.ok(
      sqModel < 0.7 * sqErased,
      `squared error in the strokes: model ${sqModel}, erased ${sqErased}`,
    );
    assert.ok(
      byModel >= byErased,
      `class kept: completed ${byModel}/${N}, erased ${byErased}/${N}`,
    );
  });
});
