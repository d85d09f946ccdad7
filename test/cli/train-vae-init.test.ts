/**
 * `sumi train-vae --init DIR` fine-tunes an autoencoder folder: the run starts from the folder's
 * weights (at learning rate 0 they come back unchanged, where a fresh run's do not), records the
 * folder and the sha256 of its weights, resumes, and refuses bad combinations with one line.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { assertCleanError, sumiInProcess as sumi } from './run-sumi.js';
import { writeTinyCoders } from './vae-setup.js';

const dir = mkdtempSync(join(tmpdir(), 'sumi-cli-vae-init-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const klConfig = writeTinyCoders(dir).kl;

const COMMON = ['--data', 'mnist', '--image-size', '8', '--batch', '8', '--scaling-batches', '1'];
const RUN = [...COMMON, '--eval-images', '8', '--quiet'];
const weightsOf = (out: string): Buffer =>
  readFileSync(join(out, 'checkpoint', 'vae', 'diffusion_pytorch_model.safetensors'));
const stateOf = (out: string): { config: { init: unknown; steps: number }; step: number } =>
  JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')) as {
    config: { init: unknown; steps: number };
    step: number;
  };

void describe('sumi train-vae --init', () => {
  const base = join(dir, 'base');
  void test('starts from the folder, records it, and resumes', async () => {
    const r0 = await sumi([
      'train-vae',
      '--config',
      klConfig,
      '--out',
      base,
      '--steps',
      '3',
      ...RUN,
    ]);
    assert.equal(r0.code, 0, r0.stderr);
    const baseWeights = weightsOf(base);
    const sha256 = createHash('sha256').update(baseWeights).digest('hex');

    // lr 0 keeps the starting weights: they are the folder's, not stream (seed, 'init')'s.
    const still = join(dir, 'still');
    const zero = ['--lr', '0', '--warmup', '0', '--steps', '1'];
    const r1 = await sumi(['train-vae', '--init', base, '--out', still, ...zero, ...RUN]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.ok(weightsOf(still).equals(baseWeights), 'the fine-tuned run starts at the weights');
    assert.deepEqual(stateOf(still).config.init, {
      vae: join(base, 'checkpoint', 'vae'),
      sha256,
    });
    const fresh = join(dir, 'fresh');
    const r2 = await sumi(['train-vae', '--config', klConfig, '--out', fresh, ...zero, ...RUN]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(!weightsOf(fresh).equals(baseWeights), 'a fresh run starts elsewhere');

    // Fine-tuning with a learning rate moves the weights, and --resume continues the run.
    const tuned = join(dir, 'tuned');
    const r3 = await sumi([
      'train-vae',
      '--init',
      base,
      '--out',
      tuned,
      '--steps',
      '4',
      '--stop-at',
      '2',
      ...RUN,
    ]);
    assert.equal(r3.code, 0, r3.stderr);
    assert.ok(!weightsOf(tuned).equals(baseWeights), 'fine-tuning moves the weights');
    const r4 = await sumi(['train-vae', '--out', tuned, '--steps', '4', '--resume', '--quiet']);
    assert.equal(r4.code, 0, r4.stderr);
    assert.equal(stateOf(tuned).step, 4);
    assert.deepEqual(stateOf(tuned).config.init, { vae: join(base, 'checkpoint', 'vae'), sha256 });
  });

  void test('refuses --init with --config, a missing folder, and a kind of the other class', async () => {
    const out = join(dir, 'bad');
    const both = await sumi([
      'train-vae',
      '--init',
      base,
      '--config',
      klConfig,
      '--out',
      out,
      ...RUN,
    ]);
    assertCleanError(both, 2, /give one of --preset, --config and --init/);
    const missing = await sumi(['train-vae', '--init', join(dir, 'nope'), '--out', out, ...RUN]);
    assertCleanError(missing, 1, /vae folder '.*nope' does not exist/);
    const kind = await sumi(['train-vae', '--init', base, '--kind', 'vq', '--out', out, ...RUN]);
    assertCleanError(kind, 2, /the model config is an AutoencoderKL; the vq kind trains a VQModel/);
    assert.equal(existsSync(out), false, 'nothing is written');
  });
});
