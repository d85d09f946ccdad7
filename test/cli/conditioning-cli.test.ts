/**
 * `sumi train` / `sumi sample` with conditioning: a class-conditional and a text-conditioned tiny
 * model train for two steps; sampling takes --class (an id, a name, "all"), --prompt,
 * --negative-prompt, --guidance and --guidance-rescale; each kind of mistake is one line with a
 * non-zero exit and writes nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { decodePng } from '../../src/data/index.js';
import { TINY_TEXT_ENCODER, TINY_TEXT_UNET, TINY_UNET } from '../diffusion/train-setup.js';
import { assertCleanError, type Result, sumiInProcess as sumi } from './run-sumi.js';

const TRAIN = { image_size: 8, batch_size: 4, lr: 1e-3, warmup_steps: 1, sample_every: 0 };
const CLASS_CONFIG = {
  model: { _class_name: 'UNet2DModel', ...TINY_UNET },
  scheduler: { num_train_timesteps: 100 },
  train: { ...TRAIN, class_cond: true },
};
const TEXT_CONFIG = {
  model: TINY_TEXT_UNET,
  scheduler: { num_train_timesteps: 100 },
  text_encoder: TINY_TEXT_ENCODER,
  train: { ...TRAIN, text_cond: true, max_tokens: 8 },
};

let dir: string;
const out = (name: string): string => join(dir, name);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-cond-cli-'));
  await writeFile(out('class.json'), JSON.stringify(CLASS_CONFIG));
  await writeFile(out('text.json'), JSON.stringify(TEXT_CONFIG));
  const train = (config: string, run: string, extra: string[] = []): Promise<Result> =>
    sumi([
      'train',
      '--data',
      'mnist',
      '--config',
      out(config),
      '--steps',
      '2',
      '--out',
      out(run),
      '--quiet',
      ...extra,
    ]);
  for (const r of [
    await train('class.json', 'class'),
    await train('class.json', 'class-no-drop', ['--label-dropout', '0']),
    await train('text.json', 'text'),
  ]) {
    assert.equal(r.code, 0, r.stderr);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('sumi sample with conditioning', () => {
  void test('a class model: --class all draws a row per class, with guidance and rescale', async () => {
    const png = out('all.png');
    const r = await sumi([
      'sample',
      '--model',
      out('class'),
      '--class',
      'all',
      '--n',
      '2',
      '--steps',
      '2',
      '--guidance',
      '3',
      '--guidance-rescale',
      '0.5',
      '--out',
      png,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const img = decodePng(readFileSync(png));
    // 10 rows of 8-pixel images and 2 columns, with the grid's padding between them.
    assert.ok(img.height > 10 * 8 && img.height < 10 * 8 + 11 * 4, `height ${img.height}`);
    assert.ok(img.width > 2 * 8 && img.width < 2 * 8 + 3 * 4, `width ${img.width}`);
    const byName = await sumi([
      'sample',
      '--model',
      out('class'),
      '--class',
      '7',
      '--n',
      '1',
      '--steps',
      '1',
      '--out',
      out('seven.png'),
      '--quiet',
    ]);
    assert.equal(byName.code, 0, byName.stderr);
  });

  void test('--out-dir writes one PNG per image and labels.json with the class of each', async () => {
    const folder = out('folder');
    const r = await sumi([
      'sample',
      '--model',
      out('class'),
      '--class',
      '3',
      '--n',
      '2',
      '--steps',
      '1',
      '--seed',
      '5',
      '--out-dir',
      folder,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(folder, '000001.png')), 'the second image');
    assert.ok(!existsSync('samples.png'), 'no grid without --out');
    const index = JSON.parse(readFileSync(join(folder, 'labels.json'), 'utf8')) as {
      seed: number;
      samples: { label?: number }[];
    };
    assert.equal(index.seed, 5);
    assert.deepEqual(
      index.samples.map((e) => e.label),
      [3, 3],
    );
  });

  void test('a text model: --prompt with a negative prompt and guidance', async () => {
    const png = out('prompt.png');
    const r = await sumi([
      'sample',
      '--model',
      out('text'),
      '--prompt',
      'a handwritten seven',
      '--negative-prompt',
      'a handwritten one',
      '--guidance',
      '2',
      '--n',
      '2',
      '--steps',
      '2',
      '--out',
      png,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(png), 'the grid is written');
  });

  void test('a text model: --prompt-file gives a row of --n images per prompt', async () => {
    const png = out('prompts.png');
    await writeFile(out('prompts.txt'), 'a handwritten one\n\n  a handwritten seven  \n');
    const r = await sumi([
      'sample',
      '--model',
      out('text'),
      '--prompt-file',
      out('prompts.txt'),
      '--n',
      '3',
      '--steps',
      '2',
      '--out',
      png,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const img = decodePng(readFileSync(png));
    // Two rows (the blank line skipped) of three 8-pixel images, with the grid's padding.
    assert.ok(img.height > 2 * 8 && img.height < 2 * 8 + 3 * 4, `height ${img.height}`);
    assert.ok(img.width > 3 * 8 && img.width < 3 * 8 + 4 * 4, `width ${img.width}`);
  });

  void test('each mistake is one line, a non-zero exit, and nothing written', async () => {
    const png = out('never.png');
    await writeFile(out('empty.txt'), '\n \n');
    const cases: [string[], number, RegExp][] = [
      [['--model', out('text'), '--prompt-file', out('empty.txt')], 1, /no prompts/],
      [['--model', out('text'), '--prompt-file', out('missing.txt')], 1, /--prompt-file/],
      [['--model', out('class'), '--prompt-file', out('empty.txt')], 1, /not text-conditioned/],
      [
        ['--model', out('text'), '--prompt', 'x', '--prompt-file', out('empty.txt')],
        2,
        /--prompt or --prompt-file/,
      ],
      [['--model', out('class'), '--class', '12'], 1, /--class 12: not one of the classes 0\.\.9/],
      [
        ['--model', out('class'), '--prompt', 'a seven'],
        1,
        /class-conditional, not text-conditioned/,
      ],
      [['--model', out('class-no-drop'), '--guidance', '3'], 1, /trained with condition dropout/],
      [['--model', out('text'), '--class', '3'], 1, /text-conditioned; use --prompt/],
      [['--model', out('text')], 1, /text-conditioned: give --prompt/],
      [
        ['--model', out('text'), '--prompt', 'x', '--negative-prompt', 'y'],
        2,
        /--negative-prompt acts through guidance/,
      ],
      [
        ['--model', out('text'), '--prompt', 'x', '--guidance-rescale', '2'],
        2,
        /--guidance-rescale must be from 0 to 1/,
      ],
      [
        ['--model', out('class'), '--classifier-scale', '2'],
        2,
        /--classifier-scale needs --classifier/,
      ],
      [
        ['--model', out('class'), '--negative-prompt', 'y', '--guidance', '2'],
        1,
        /negative prompt needs a text-conditioned model/,
      ],
    ];
    for (const [args, code, message] of cases) {
      assertCleanError(
        await sumi(['sample', ...args, '--n', '1', '--steps', '1', '--out', png]),
        code,
        message,
      );
      assert.ok(!existsSync(png), `nothing written for ${args.join(' ')}`);
    }
    // A text model folder without its tokenizer.
    await rm(join(out('text'), 'checkpoint', 'tokenizer'), { recursive: true });
    assertCleanError(
      await sumi(['sample', '--model', out('text'), '--prompt', 'x', '--n', '1', '--out', png]),
      1,
      /has no tokenizer\//,
    );
  });
});
