/**
 * `sumi export` of a `sumi train-vae` run: a standalone diffusers autoencoder folder (config.json
 * with the measured scaling_factor and the weights at its root) and the run's sumi.json with the
 * dtype and sha256 of the weights written; f32 keeps the bytes, f16 halves them and loads back.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { decodeLatents, encodeImages, loadVae } from '../../src/diffusion/index.js';
import { randn } from '../../src/engine/index.js';
import { sumiInProcess as sumi } from './run-sumi.js';
import { writeTinyCoders } from './vae-setup.js';

const dir = mkdtempSync(join(tmpdir(), 'sumi-cli-export-vae-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const config = writeTinyCoders(dir).kl;
const WEIGHTS = 'diffusion_pytorch_model.safetensors';
const json = (path: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

void describe('sumi export of an autoencoder run', () => {
  void test('f32 keeps the weights, f16 halves them; both load and carry the run info', async () => {
    const run = join(dir, 'run');
    const r = await sumi([
      'train-vae',
      '--config',
      config,
      '--data',
      'mnist',
      '--image-size',
      '8',
      '--batch',
      '8',
      '--scaling-batches',
      '1',
      '--eval-images',
      '8',
      '--steps',
      '2',
      '--out',
      run,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const ckpt = join(run, 'checkpoint', 'vae');
    const f32 = join(dir, 'f32');
    const e32 = await sumi(['export', '--model', run, '--out', f32]);
    assert.equal(e32.code, 0, e32.stderr);
    assert.match(e32.stdout, /the AutoencoderKL of /);
    assert.ok(
      readFileSync(join(f32, WEIGHTS)).equals(readFileSync(join(ckpt, WEIGHTS))),
      'f32 bytes',
    );
    assert.deepEqual(json(join(f32, 'config.json')), json(join(ckpt, 'config.json')));
    const info = json(join(f32, 'sumi.json'));
    assert.equal(info.format, 'sumi-autoencoder');
    assert.equal(info.weightsDtype, 'F32');
    assert.equal(info.weightsSha256, sha(join(f32, WEIGHTS)));

    const f16 = join(dir, 'f16');
    const e16 = await sumi(['export', '--model', run, '--out', f16, '--dtype', 'f16']);
    assert.equal(e16.code, 0, e16.stderr);
    const n32 = readFileSync(join(f32, WEIGHTS)).length;
    const n16 = readFileSync(join(f16, WEIGHTS)).length;
    assert.ok(n16 < 0.6 * n32, `f16 ${n16} bytes against f32 ${n32}`);
    assert.equal(json(join(f16, 'sumi.json')).weightsSha256, sha(join(f16, WEIGHTS)));
    assert.equal(
      (json(join(f16, 'config.json')) as { scaling_factor: number }).scaling_factor,
      (json(join(ckpt, 'config.json')) as { scaling_factor: number }).scaling_factor,
    );

    // The f16 folder encodes and decodes as the f32 one does, to f16 precision.
    const a = await loadVae(f32);
    const b = await loadVae(f16);
    const x = randn([2, 1, 8, 8], { seed: 3 }).tanh();
    const u = randn([2, 2, 4, 4], { seed: 4 });
    const ya = [
      ...encodeImages(a.vae, x).mean.dataSync(),
      ...decodeLatents(a.vae, a.spec, u).dataSync(),
    ];
    const yb = [
      ...encodeImages(b.vae, x).mean.dataSync(),
      ...decodeLatents(b.vae, b.spec, u).dataSync(),
    ];
    let err = 0;
    for (let i = 0; i < ya.length; i++) err = Math.max(err, Math.abs(ya[i]! - yb[i]!));
    assert.ok(err < 1e-2, `f16 against f32: max difference ${err}`);
  });
});
