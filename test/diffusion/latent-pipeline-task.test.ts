/**
 * loadPipeline on a latent pipeline folder (vae/): refused to a caller that runs on pixels, and
 * loaded for one that decodes latents only as a generating model; an inpainting-trained latent
 * model is refused by name (a ModelTaskError, a usage error) for every caller, the library's
 * included, not by the channel count its vae check would find.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { loadPipeline, ModelTaskError } from '../../src/diffusion/index.js';
import { writeLatentPipeline } from './latent-editing-setup.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-latent-task-');

void describe('loadPipeline of a latent pipeline', () => {
  void test('a caller on pixels is refused; one that decodes gets the vae', async () => {
    const dir = await writeLatentPipeline(join(fx.dir, 'ldm'));
    await assert.rejects(
      loadPipeline(dir),
      (e: unknown) => e instanceof ModelTaskError && /a latent diffusion model/.test(e.message),
    );
    const p = await loadPipeline(dir, { latent: true });
    assert.equal(p.vae?.spec.vaeClass, 'AutoencoderKL');
  });

  void test('an inpainting-trained latent model is refused by name', async () => {
    const dir = await writeLatentPipeline(join(fx.dir, 'ldm-inpaint'), { inpaint: true });
    await assert.rejects(
      loadPipeline(dir, { tasks: ['generate', 'inpaint'], latent: true }),
      (e: unknown) =>
        e instanceof ModelTaskError &&
        /an inpainting-trained latent model \(vae\/ and sumi\.json "inpaint"\) is not supported/.test(
          e.message,
        ),
    );
  });
});
