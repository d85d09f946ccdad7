/**
 * A vae folder from its files' bytes, as the browser playground fetches it (vaeFromBytes, in the
 * browser-safe 'sumi' entry): the same autoencoder, spec and decoded images as loadVae reading the
 * folder, for an AutoencoderKL (with a shift) and a VQModel; a config that is no autoencoder, has
 * no scaling_factor or is not JSON, and weights that do not fit, are one LatentError naming the
 * file; checkLatentDenoiser refuses a U-Net whose samples are not the vae's latents.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { loadVae } from '../../src/diffusion/index.js';
import { randn } from '../../src/engine/index.js';
import {
  checkLatentDenoiser,
  CONFIG_NAME,
  LatentDecoder,
  LatentError,
  vaeFromBytes,
  WEIGHTS_NAME,
} from '../../src/index.js';
import { writeTinyKlVae, writeTinyVqVae } from './latent-setup.js';
import { trainFixture } from './train-setup.js';

const fx = trainFixture('sumi-vae-bytes-');

async function filesOf(dir: string): Promise<{ config: Uint8Array; weights: Uint8Array }> {
  return {
    config: new Uint8Array(await readFile(join(dir, CONFIG_NAME))),
    weights: new Uint8Array(await readFile(join(dir, WEIGHTS_NAME))),
  };
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Rejects with a LatentError whose message matches `message`. */
async function rejectsLatent(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof LatentError, String(e));
    assert.match(e.message, message);
    assert.equal(e.message.split('\n').length, 1, 'one line');
    return true;
  });
}

void describe('vaeFromBytes', () => {
  for (const kind of ['kl', 'vq'] as const) {
    void test(`${kind}: the autoencoder loadVae reads, decoding the same images`, async () => {
      const dir = join(fx.dir, `vae-${kind}`);
      await (kind === 'kl' ? writeTinyKlVae(dir, { shiftFactor: 0.1 }) : writeTinyVqVae(dir));
      const { config, weights } = await filesOf(dir);
      const fromBytes = await vaeFromBytes(config, weights, 'https://example.test/m/vae');
      const fromFiles = await loadVae(dir);
      assert.deepEqual(fromBytes.spec, fromFiles.spec);
      assert.deepEqual(fromBytes.config, fromFiles.config);
      assert.equal(fromBytes.vae.className, kind === 'kl' ? 'AutoencoderKL' : 'VQModel');
      assert.equal(fromBytes.spec.shiftFactor, kind === 'kl' ? 0.1 : null);
      assert.equal(fromBytes.vae.training, false, 'eval mode');
      const u = randn([2, 2, 4, 4], { seed: 7 });
      const a = new LatentDecoder(fromBytes.vae, fromBytes.spec).decode(u);
      const b = new LatentDecoder(fromFiles.vae, fromFiles.spec).decode(u);
      assert.deepEqual(a.shape, [2, 1, 8, 8]);
      assert.deepEqual([...a.dataSync()], [...b.dataSync()]);
      for (const t of [u, a, b]) t.dispose();
      for (const m of [fromBytes.vae, fromFiles.vae]) for (const t of m.parameters()) t.dispose();
    });
  }

  void test('a config or weights that do not make a latent autoencoder: one LatentError', async () => {
    const dir = await writeTinyKlVae(join(fx.dir, 'vae-bad'));
    const { config, weights } = await filesOf(dir);
    const json = JSON.parse(new TextDecoder().decode(config)) as Record<string, unknown>;
    const src = 'https://example.test/m/vae';
    await rejectsLatent(
      vaeFromBytes(utf8(JSON.stringify({ ...json, _class_name: 'UNet2DModel' })), weights, src),
      /^https:\/\/example\.test\/m\/vae\/config\.json: a "UNet2DModel"; latent diffusion needs an AutoencoderKL or a VQModel$/,
    );
    const { scaling_factor: _, ...unscaled } = json;
    await rejectsLatent(
      vaeFromBytes(utf8(JSON.stringify(unscaled)), weights, src),
      /^https:\/\/example\.test\/m\/vae\/config\.json: no scaling_factor/,
    );
    await rejectsLatent(
      vaeFromBytes(utf8(JSON.stringify({ ...json, scaling_factor: -1 })), weights, src),
      /^https:\/\/example\.test\/m\/vae\/config\.json: .*scaling_factor.*-1/,
    );
    await rejectsLatent(vaeFromBytes(utf8('{ not json'), weights, src), /vae\/config\.json/);
    await rejectsLatent(
      vaeFromBytes(config, weights.subarray(0, weights.length - 8), src),
      /vae\/diffusion_pytorch_model\.safetensors/,
    );
    // Weights of another shape: a wider coder's config with these weights.
    const wider = { ...json, block_out_channels: [16, 16] };
    await rejectsLatent(
      vaeFromBytes(utf8(JSON.stringify(wider)), weights, src),
      /vae\/diffusion_pytorch_model\.safetensors/,
    );
  });

  void test("checkLatentDenoiser: the U-Net's samples must have the vae's latent channels", async () => {
    const dir = await writeTinyKlVae(join(fx.dir, 'vae-check'));
    const { config, weights } = await filesOf(dir);
    const { vae, spec } = await vaeFromBytes(config, weights, 'm/vae');
    assert.equal(spec.latentChannels, 2);
    checkLatentDenoiser(spec, { sampleShape: [2, 4, 4] }, 'm/vae');
    assert.throws(
      () => checkLatentDenoiser(spec, { sampleShape: [4, 4, 4] }, 'm/vae'),
      (e: unknown) =>
        e instanceof LatentError &&
        e.message === "m/vae: the vae's latents have 2 channels, the U-Net's samples 4",
    );
    for (const t of vae.parameters()) t.dispose();
  });
});
