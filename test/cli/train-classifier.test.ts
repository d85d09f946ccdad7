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

import { main } from '../../src/cli/main.js';
import { loadClassifier } from '../../src/diffusion/index.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** main(args) in this process, with console output captured. */
async function sumi(args: string[]): Promise<Result> {
  const { log, error } = console;
  let stdout = '';
  let stderr = '';
  console.log = (...a: unknown[]) => void (stdout += `${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void (stderr += `${a.join(' ')}\n`);
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    console.log = log;
    console.error = error;
  }
}

function assertUsage(r: Result, message: RegExp): void {
  assert.equal(r.code, 2, `exit code 2 (stderr: ${r.stderr})`);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

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
    assertUsage(await sumi([...base]), /^sumi train-classifier: --data is required\n/);
    assertUsage(await sumi([...base, '--data', 'nope']), /unknown dataset 'nope'/);
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--clean', '--noise-aware']),
      /give --noise-aware or --clean, not both/,
    );
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--holdout', '1.5']),
      /holdout must be in \[0, 1\), got 1\.5/,
    );
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--rotate', '200', '--zoom', '1']),
      /rotate must be in \[0, 180\], got 200; zoom must be in \[0, 1\), got 1/,
    );
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--zoom', 'ten']),
      /--zoom expects a number, got 'ten'/,
    );
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--schedule-from', join(dir, 'none')]),
      /--schedule-from: model directory .* does not exist/,
    );
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--clean', '--schedule-from', 'models/mnist-small']),
      /drop it with --clean/,
    );
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--eval-t', '0,1000']),
      /evaluation timestep 1000 must be an integer in 0\.\.999/,
    );
    assertUsage(
      await sumi([...base, '--data', 'mnist', '--config', join(dir, 'missing.json')]),
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
    assertUsage(await sumi(args), /already holds a checkpoint; pass --resume/);
    assertUsage(
      await sumi([...args, '--resume', '--lr', '0.5']),
      /settings; these differ: lr: checkpoint has 0\.001, asked for 0\.5/,
    );
    assertUsage(
      await sumi([...args, '--image-size', '12', '--resume']),
      /these differ: imageSize: checkpoint has 8, asked for 12/,
    );
    assertUsage(
      await sumi(['train-classifier', '--out', out, '--resume', '--config', config]),
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
