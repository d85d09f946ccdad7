/**
 * The autoencoders shipped in models/emoji-vae (KL) and models/emoji-vq (VQ): each folder's
 * sumi.json names the sha256 of its weights file and the scaling_factor of its config, and each
 * reconstructs the first 32 of its 96 held-out emoji (the split of its run: fraction 0.05, seed
 * 0) near the PSNR docs/latent.md reports for all 96 (26.12 and 24.05 dB).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { REPO_ROOT } from '../../src/cli/common.js';
import { loadDataset, subsetDataset } from '../../src/data/index.js';
import {
  evaluateReconstruction,
  imageHoldoutSplit,
  loadAutoencoder,
} from '../../src/diffusion/index.js';
import { imageQuality } from '../../src/eval/index.js';

const CASES: [string, number][] = [
  ['emoji-vae', 25],
  ['emoji-vq', 23],
];

void describe('shipped emoji autoencoders', () => {
  for (const [name, floor] of CASES) {
    void test(`${name}: its files agree, and held-out emoji come back above ${floor} dB`, async () => {
      const dir = join(REPO_ROOT, 'models', name);
      const info = JSON.parse(readFileSync(join(dir, 'sumi.json'), 'utf8')) as {
        weightsSha256: string;
        scalingFactor: number;
        heldOut: { fraction: number; psnr: number };
      };
      const weights = readFileSync(join(dir, 'diffusion_pytorch_model.safetensors'));
      assert.equal(createHash('sha256').update(weights).digest('hex'), info.weightsSha256);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as {
        scaling_factor: number;
      };
      assert.equal(config.scaling_factor, info.scalingFactor);

      const { model } = await loadAutoencoder(dir);
      const ds = loadDataset('emoji', { size: 32, channels: 3 });
      const { heldOut } = imageHoldoutSplit(ds.length, info.heldOut.fraction, 0);
      assert.equal(heldOut.length, 96);
      const scores = await evaluateReconstruction(model, subsetDataset(ds, heldOut), {
        limit: 32,
        measure: imageQuality,
      });
      assert.ok(scores.psnr! > floor, `${name}: PSNR ${scores.psnr} dB on 32 held-out emoji`);
    });
  }
});
