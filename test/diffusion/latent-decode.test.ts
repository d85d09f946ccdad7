/**
 * LatentDecoder.decode: x = clamp(D(u / scaling_factor + shift), −1, 1), the one clamp of a
 * latent model's images. The tiny random autoencoder decodes unit-normal latents inside [−1, 1]
 * by itself, so its output convolution is scaled up here until the decoded values leave it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { LatentDecoder, loadVae } from '../../src/diffusion/index.js';
import { add, mul, randn, tensor } from '../../src/engine/index.js';
import { AutoencoderKL } from '../../src/nn/models/index.js';
import { writeTinyKlVae } from './latent-setup.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-latent-decode-');

void describe('LatentDecoder.decode', () => {
  void test('is D(u / scaling_factor + shift) clamped to [-1, 1]', async () => {
    const v = await loadVae(
      await writeTinyKlVae(join(fx.dir, 'vae'), { scalingFactor: 0.5, shiftFactor: 0.25 }),
    );
    assert.ok(v.vae instanceof AutoencoderKL, 'an AutoencoderKL');
    const w = v.vae.stateDict().get('decoder.conv_out.weight')!;
    const wide = tensor(
      Float32Array.from(w.dataSync(), (x) => 40 * x),
      w.shape,
    );
    await v.vae.loadStateDict(new Map([...v.vae.stateDict(), ['decoder.conv_out.weight', wide]]));
    const u = randn([2, 2, 4, 4], { seed: 4 });
    const raw = v.vae.decode(add(mul(u, 1 / 0.5), 0.25)).dataSync();
    assert.ok(
      raw.some((x) => x < -1) && raw.some((x) => x > 1),
      `the decoder leaves [-1, 1]: ${Math.min(...raw)}..${Math.max(...raw)}`,
    );
    const x = new LatentDecoder(v.vae, v.spec).decode(u);
    assert.deepEqual(x.shape, [2, 1, 8, 8]);
    assert.deepEqual(
      Array.from(x.dataSync()),
      Array.from(raw, (r) => Math.min(1, Math.max(-1, r))),
    );
  });
});
