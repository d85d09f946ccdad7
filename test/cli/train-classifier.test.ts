/**
 * `sumi train-classifier`: one clear line and exit code 2 for bad input (and nothing written),
 * a tiny run exported as f16, and the resume rules.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { loadClassifier } from '../../src/diffusion/index.js';
import { assertCleanError, sumiInProcess as sumi } from './run-sumi.js';

let dir: string;
let config: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-cli-classifier-'));
  config = join(dir, 'tiny.json');
  await writeFile(
    config,
    JSON.stringify({
      block_out_channels: [8, 16],
      down_block_types: ['DownBlock2D', 'DownBlock2D'],
      layers_per_block: 1,
      norm_num_groups: 4,
      attention_head_dim: 8,
    }),
  );
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('sumi train-classifier', () => {
  void test('bad input: one line, exit code 2, nothing written', async () => {
    const out = join(dir, 'never');
    const base = ['train-classifier', '--out', out, '--quiet'];
    assertCleanError(await sumi([...base]), 2, /^sumi train-classifier: --data is required\n/);
    assertCleanError(await sumi([...base, '--data', 'nope']), 2, /unknown dataset 'nope'/);
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--clean', '--noise-aware']),
      2,
      /give --noise-aware or --clean, not both/,
    );
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--holdout', '1.5']),
      2,
      /'holdout' must be a number in \[0, 1\), got 1\.5/,
    );
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--rotate', '200', '--zoom', '1']),
      2,
      /'rotate' must be a number in \[0, 180\], got 200; 'zoom' must be a number in \[0, 1\), got 1/,
    );
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--zoom', 'ten']),
      2,
      /--zoom expects a number, got 'ten'/,
    );
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--schedule-from', join(dir, 'none')]),
      2,
      /--schedule-from: model directory .* does not exist/,
    );
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--clean', '--schedule-from', 'models/mnist-small']),
      2,
      /drop it with --clean/,
    );
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--eval-t', '0,1000']),
      2,
      /evaluation timestep 1000 must be an integer in 0\.\.999/,
    );
    assertCleanError(
      await sumi([...base, '--data', 'mnist', '--config', join(dir, 'missing.json')]),
      2,
      /--config .*missing\.json/,
    );
    assert.ok(!existsSync(out), 'no output folder for bad input');
  });

  void test('trains, exports as f16, and resumes only under the same settings', async () => {
    const out = join(dir, 'run');
    const exported = join(dir, 'exported');
    const args = [
      'train-classifier',
      '--data',
      'mnist',
      '--image-size',
      '8',
      '--config',
      config,
      '--clean',
      '--steps',
      '3',
      '--batch',
      '8',
      '--holdout',
      '0.05',
      '--shift',
      '1',
      '--rotate',
      '8',
      '--zoom',
      '0.05',
      '--out',
      out,
      '--quiet',
    ];
    const r = await sumi([...args, '--stop-at', '2']);
    assert.equal(r.code, 0, r.stderr);
    assertCleanError(await sumi(args), 2, /already holds a checkpoint; pass --resume/);
    assertCleanError(
      await sumi([...args, '--resume', '--lr', '0.5']),
      2,
      /settings; these differ: lr: checkpoint has 0\.001, asked for 0\.5/,
    );
    assertCleanError(
      await sumi([...args, '--image-size', '12', '--resume']),
      2,
      /these differ: imageSize: checkpoint has 8, asked for 12/,
    );
    assertCleanError(
      await sumi(['train-classifier', '--out', out, '--resume', '--config', config]),
      2,
      /--config needs --data/,
    );
    const done = await sumi([
      'train-classifier',
      '--out',
      out,
      '--resume',
      '--quiet',
      '--export',
      exported,
      '--export-dtype',
      'f16',
    ]);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /trained to step 3\/3/);
    const loaded = await loadClassifier(exported);
    assert.equal(loaded.info?.step, 3);
    assert.equal(loaded.info?.heldOut?.count, 501); // round(0.05 · n_c) summed over the digits
    assert.match(
      loaded.info?.command ?? '',
      /^sumi train-classifier --data mnist --image-size 8 --config \S+ --clean --batch 8 --holdout 0\.05 --shift 1 --rotate 8 --zoom 0\.05 --out \S+ --steps 3$/,
    );
    const header = readFileSync(
      join(exported, 'classifier', 'diffusion_pytorch_model.safetensors'),
    );
    assert.match(header.subarray(8, 200).toString(), /"F16"/);
  });
});
