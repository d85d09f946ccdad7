/**
 * `sumi train-vae`, `sumi reconstruct` and `sumi eval recon`: one clear line and exit code 2 for
 * bad input (and nothing written), a tiny run that resumes to the same files as one in one go,
 * the folder it writes read back by reconstruct and eval recon.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { loadDataset, planesToImage, savePng } from '../../src/data/index.js';
import { assertCleanError, type Result, sumiInProcess as sumi } from './run-sumi.js';
import { TINY_CODER, writeTinyCoders } from './vae-setup.js';

/** Exit 2, the problem on the first line of stderr, no stack trace, and `out` not written. */
function assertInputError(r: Result, message: RegExp, out: string): void {
  assertCleanError(r, 2, message);
  assert.match(r.stderr.split('\n')[0]!, message);
  assert.equal(existsSync(out), false, `${out} is not written`);
}

let dir: string;
let kl: string;
let vq: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-cli-vae-'));
  ({ kl, vq } = writeTinyCoders(dir));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tiny = (config: string, out: string, ...more: string[]): string[] => [
  'train-vae',
  '--data',
  'mnist',
  '--image-size',
  '8',
  '--config',
  config,
  '--out',
  out,
  '--steps',
  '4',
  '--batch',
  '8',
  '--scaling-batches',
  '2',
  '--eval-images',
  '16',
  '--quiet',
  ...more,
];

void describe('sumi train-vae: bad input', () => {
  const M = ['--data', 'mnist', '--image-size', '8'];
  const cases: [string, string[], RegExp][] = [
    ['an unknown kind', [...M, '--kind', 'foo'], /--kind: 'foo' is not one of kl, vq/],
    [
      'a U-Net preset',
      [...M, '--preset', 'mnist-small'],
      /preset mnist-small: the model config is a UNet2DModel; train-vae trains an AutoencoderKL/,
    ],
    [
      'a KL preset for the vq kind',
      ['--data', 'mnist', '--image-size', '32', '--kind', 'vq', '--preset', 'vae-emoji'],
      /preset vae-emoji: the model config is an AutoencoderKL; the vq kind trains a VQModel/,
    ],
    [
      'both a preset and a config',
      [...M, '--preset', 'vae-emoji', '--config', 'x.json'],
      /give one of --preset, --config and --init/,
    ],
    ['an EMA codebook for the kl kind', [...M, '--ema-codebook', '0.99'], /emaCodebook .* vq kind/],
    [
      'no reconstruction loss',
      [...M, '--l1-weight', '0', '--mse-weight', '0'],
      /l1Weight \+ mseWeight must be > 0/,
    ],
    ['a bad channel count', [...M, '--channels', '2'], /--channels must be 1 or 3, got 2/],
    ['an unknown dataset', ['--data', 'nope'], /unknown dataset 'nope'/],
    ['an unknown preset', [...M, '--preset', 'nope'], /unknown preset 'nope'/],
    ['a stop past the end', [...M, '--stop-at', '9'], /--stop-at must be in 1\.\.4/],
    ['no --data', ['--image-size', '8'], /--data is required/],
  ];
  for (const [what, extra, message] of cases) {
    void test(what, async () => {
      const out = join(dir, `bad-${what.replace(/\W+/g, '-')}`);
      const config = extra.includes('--preset') ? [] : ['--config', kl];
      const args = ['train-vae', '--out', out, '--steps', '4', '--quiet', ...config, ...extra];
      assertInputError(await sumi(args), message, out);
    });
  }

  void test('--resume with other settings, or onto a classifier run, names the difference', async () => {
    const out = join(dir, 'resume-bad');
    assert.equal((await sumi(tiny(kl, out, '--stop-at', '2'))).code, 0);
    const r = await sumi(tiny(kl, out, '--resume', '--lr', '0.5'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /these differ: lr: checkpoint has 0\.0003, asked for 0\.5/);
    const again = await sumi(tiny(kl, out));
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already holds a checkpoint; pass --resume/);
    const cls = join(dir, 'classifier-state');
    await mkdir(join(cls, 'checkpoint'), { recursive: true });
    await writeFile(
      join(cls, 'checkpoint', 'trainer_state.json'),
      JSON.stringify({ format: 'sumi-classifier-trainer-state', version: 1, config: {} }),
    );
    const wrong = await sumi(tiny(kl, cls, '--resume'));
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /not a Sumi autoencoder trainer state .* \(sumi train-classifier\)/);
  });
});

void describe('sumi train-vae: a tiny run', () => {
  void test('KL: --stop-at then --resume writes the files of one run; reconstruct and eval recon read them', async () => {
    const a = join(dir, 'kl-a');
    const b = join(dir, 'kl-b');
    const r = await sumi(tiny(kl, a));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /trained to step 4\/4 .*autoencoder .*checkpoint\/vae/);
    assert.equal((await sumi(tiny(kl, b, '--stop-at', '2'))).code, 0);
    assert.equal((await sumi(tiny(kl, b, '--resume'))).code, 0);
    for (const f of [
      'vae/diffusion_pytorch_model.safetensors',
      'vae/config.json',
      'optimizer.safetensors',
    ]) {
      const x = readFileSync(join(a, 'checkpoint', f));
      assert.ok(x.equals(readFileSync(join(b, 'checkpoint', f))), `${f} differs after --resume`);
    }
    const info = JSON.parse(readFileSync(join(a, 'checkpoint', 'sumi.json'), 'utf8')) as {
      command: string;
      scalingFactor: number;
      heldOut: { psnr: number };
    };
    assert.match(info.command, /^sumi train-vae --data mnist --image-size 8 .* --steps 4$/);
    assert.ok(info.heldOut.psnr > 0, 'held-out PSNR recorded');
    const cfg = JSON.parse(readFileSync(join(a, 'checkpoint', 'vae', 'config.json'), 'utf8')) as {
      scaling_factor: number;
    };
    assert.equal(cfg.scaling_factor, info.scalingFactor);

    // reconstruct: an 8x8 digit through the run folder's autoencoder
    const ds = loadDataset('mnist', { size: 8 });
    const png = join(dir, 'digit.png');
    await savePng(png, planesToImage(ds.get(0).image, 1, 8, 8));
    const out = join(dir, 'recon.png');
    const rec = await sumi(['reconstruct', '--vae', a, '--in', png, '--out', out]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stdout, /PSNR [\d.]+ dB/);
    assert.ok(existsSync(out), 'the reconstruction is written');
    assertInputError(
      await sumi(['reconstruct', '--vae', a, '--in', png, '--out', out]),
      /exists; pass --force/,
      join(dir, 'never'),
    );
    const big = join(dir, 'big.png');
    await savePng(big, planesToImage(new Float32Array(16 * 16), 1, 16, 16));
    const wrong = await sumi([
      'reconstruct',
      '--vae',
      a,
      '--in',
      big,
      '--out',
      join(dir, 'r2.png'),
    ]);
    assertInputError(
      wrong,
      /big\.png is 16x16; the autoencoder in .* works on 8x8 images/,
      join(dir, 'r2.png'),
    );
    const none = await sumi([
      'reconstruct',
      '--vae',
      dir,
      '--in',
      png,
      '--out',
      join(dir, 'r3.png'),
    ]);
    assertInputError(none, /no autoencoder/, join(dir, 'r3.png'));

    // eval recon: the run's held-out split by default, JSON and a grid
    const grid = join(dir, 'grid.png');
    const ev = await sumi(['eval', 'recon', '--vae', a, '--json', '--quiet', '--grid', grid]);
    assert.equal(ev.code, 0, ev.stderr);
    const res = JSON.parse(ev.stdout) as {
      data: { holdout: number; count: number };
      results: { psnr: number; psnrStderr: number; codebookUsage: null };
    };
    assert.equal(res.data.holdout, 0.05);
    assert.equal(res.data.count, 500);
    assert.ok(res.results.psnr > 0 && res.results.psnrStderr > 0, 'PSNR ± stderr');
    assert.equal(res.results.codebookUsage, null);
    assert.ok(existsSync(grid), 'the grid is written');
  });

  void test('VQ: codebook usage in the metrics log and eval recon', async () => {
    const out = join(dir, 'vq');
    const r = await sumi(tiny(vq, out, '--ema-codebook', '0.9', '--log-every', '2'));
    assert.equal(r.code, 0, r.stderr);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    const first = JSON.parse(lines[0]!) as Record<string, number>;
    assert.ok(first.codebook_usage! > 0 && first.perplexity! >= 1, lines[0]);
    assert.ok('vq' in first && 'rec' in first, lines[0]);
    const ev = await sumi(['eval', 'recon', '--vae', out, '--n', '20', '--quiet']);
    assert.equal(ev.code, 0, ev.stderr);
    assert.match(ev.stdout, /codebook [\d.]+% used, perplexity [\d.]+/);
  });
});

void describe('sumi train-vae: the "train" section of a config file', () => {
  const kl = { _class_name: 'AutoencoderKL', ...TINY_CODER };
  const args = (config: string, out: string): string[] => [
    'train-vae',
    '--data',
    'mnist',
    '--image-size',
    '8',
    '--config',
    config,
    '--out',
    out,
    '--steps',
    '1',
    '--batch',
    '8',
    '--scaling-batches',
    '1',
    '--eval-images',
    '8',
    '--quiet',
  ];

  void test("is read under the autoencoder trainer's keys, snake_case or camelCase", async () => {
    const file = join(dir, 'kl-train.json');
    await writeFile(
      file,
      JSON.stringify({ model: kl, train: { kl_weight: 1e-5, mseWeight: 0.5 } }),
    );
    const out = join(dir, 'kl-train');
    const r = await sumi(args(file, out));
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(
      readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8'),
    ) as { config: { klWeight: number; mseWeight: number } };
    assert.equal(state.config.klWeight, 1e-5);
    assert.equal(state.config.mseWeight, 0.5);
  });

  void test("refuses a bad value of an autoencoder key and a diffusion trainer's key", async () => {
    const file = join(dir, 'kl-bad.json');
    await writeFile(file, JSON.stringify({ model: kl, train: { kl_weight: -1 } }));
    const out = join(dir, 'kl-bad');
    assertInputError(
      await sumi(args(file, out)),
      /kl-bad\.json "train": 'klWeight' must be a number >= 0, got -1/,
      out,
    );
    // a folder like a preset: config.json and train.json
    const folder = join(dir, 'kl-folder');
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'config.json'), JSON.stringify(kl));
    await writeFile(join(folder, 'train.json'), JSON.stringify({ ema_decay: 0.9, vq_beta: 0.5 }));
    assertInputError(
      await sumi(args(folder, out)),
      /kl-folder "train": unknown key 'emaDecay'/,
      out,
    );
  });
});
