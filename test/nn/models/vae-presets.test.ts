/**
 * The autoencoder presets of `sumi train-vae` (presets/vae-emoji, presets/vq-emoji): each file is
 * exactly the config Sumi writes, the parameter counts are pinned, and 3×32×32 images go to 4×8×8
 * latents and back.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Generator, noGrad, randn } from '../../../src/engine/index.js';
import { AutoencoderKL, createModel, VQModel } from '../../../src/nn/models/index.js';

const PRESETS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../presets');

const COUNTS: Record<string, [string, number]> = {
  'vae-emoji': ['AutoencoderKL', 954_567],
  'vq-emoji': ['VQModel', 954_255],
};

void describe('autoencoder presets', () => {
  for (const [name, [cls, count]] of Object.entries(COUNTS)) {
    void it(`${name}: a ${cls} of ${count} parameters, 3x32x32 -> 4x8x8 and back`, () => {
      const text = readFileSync(join(PRESETS, name, 'config.json'), 'utf8');
      const config = JSON.parse(text) as Record<string, unknown>;
      const model = createModel(config, { generator: new Generator(1) });
      assert.equal(model.className, cls);
      assert.equal(model.numParameters(), count);
      assert.deepEqual(JSON.parse(model.configJson()), config);
      assert.equal(config.scaling_factor, 1);
      assert.equal(config.norm_num_groups, 8);
      const x = randn([1, 3, 32, 32], { generator: new Generator(2) });
      noGrad(() => {
        if (model instanceof AutoencoderKL) {
          const q = model.encode(x);
          assert.deepEqual(q.mean.shape, [1, 4, 8, 8]);
          assert.deepEqual(model.decode(q.mean).shape, [1, 3, 32, 32]);
        } else if (model instanceof VQModel) {
          const h = model.encode(x);
          assert.deepEqual(h.shape, [1, 4, 8, 8]);
          assert.deepEqual(model.decode(h).sample.shape, [1, 3, 32, 32]);
          assert.equal(model.config.num_vq_embeddings, 512);
        } else {
          assert.fail(`${name} is a ${model.className}`);
        }
      });
    });
  }
});
