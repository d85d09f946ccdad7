/**
 * `sumi train --dreambooth` on a tiny text-to-image base: a full fine-tune samples with
 * `sumi sample --model`, a LoRA one with `--lora`, a resumption reads the cached class images;
 * a base without a text encoder, a missing, empty or misshapen instance folder and a missing
 * instance prompt are one line with exit 2, and nothing is written.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { encodePng } from '../../src/data/index.js';
import {
  TINY_TEXT_ENCODER,
  TINY_TEXT_UNET,
  TINY_UNET,
  trainBase,
  trainFixture,
} from '../diffusion/train-setup.js';
import { assertInputError, sumiInProcess as sumi } from './run-sumi.js';

const fx = trainFixture('sumi-dreambooth-cli-');
const at = (name: string): string => join(fx.dir, name);

/** n gray (or RGB) PNGs of side `size` in `dir`. */
async function writeImages(dir: string, n: number, size = 8, channels: 1 | 3 = 1): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const img = fx.mnist8.get(i).image;
    const data = new Uint8Array(size * size * channels);
    for (let p = 0; p < data.length; p++) data[p] = Math.round(255 * (img[p % 64] ?? 0));
    await writeFile(
      join(dir, `${i}.png`),
      encodePng({ width: size, height: size, channels, data }),
    );
  }
}

let ready: Promise<void> | null = null;
/** The text base, a class-conditional base and the instance folders, made once. */
function fixtures(): Promise<void> {
  ready ??= (async () => {
    await trainBase(fx, at('text-base'), TINY_TEXT_UNET, {
      textCond: true,
      textEncoder: TINY_TEXT_ENCODER,
    });
    await trainBase(fx, at('class-base'), TINY_UNET, { classCond: true });
    await writeImages(at('inst'), 3);
    await writeImages(at('big'), 2, 16);
    await writeImages(at('rgb'), 2, 8, 3);
    await mkdir(at('empty'), { recursive: true });
  })();
  return ready;
}

const RUN = ['--batch', '2', '--lr', '1e-3', '--warmup', '0', '--ema-decay', '0'];
const RUN_OUT = ['--save-every', '0', '--sample-every', '0', '--micro-batches', '1'];

/** sumi train --dreambooth with the tiny run's settings and `extra`. */
function dreambooth(out: string, extra: string[], steps = 2): string[] {
  return [
    'train',
    '--steps',
    String(steps),
    '--dreambooth',
    '--class-prompt',
    'a handwritten digit',
    '--num-class-images',
    '4',
    '--prior-sampler',
    'ddim',
    '--prior-steps',
    '2',
    '--prior-guidance',
    '1',
    ...RUN,
    ...RUN_OUT,
    '--out',
    out,
    ...extra,
  ];
}

const SAMPLE = ['--n', '2', '--steps', '2', '--seed', '1', '--quiet'];

void describe('sumi train --dreambooth', () => {
  void test('a full fine-tune samples with --model; a resumption reads the class images', async () => {
    await fixtures();
    const out = at('full');
    const args = ['--base', at('text-base'), '--instance-data', at('inst')];
    const prompt = ['--instance-prompt', 'a sks digit'];
    const r = await sumi([...dreambooth(out, [...args, ...prompt])]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /sampling 4 class images of 'a handwritten digit'/);
    assert.match(r.stderr, /'sks' not in the base's vocabulary: encoded as <\|unk\|>/);
    assert.match(r.stdout, /sample it: sumi sample --model .*full --prompt 'a sks digit'/);
    const again = await sumi(dreambooth(out, [...args, ...prompt, '--resume'], 3));
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stderr,
      /class images .*class_images\.safetensors: 4 of 'a handwritten digit'/,
    );
    assert.match(again.stdout, /trained to step 3\/3/);
    const s = await sumi([
      'sample',
      '--model',
      out,
      '--prompt',
      'a sks digit',
      ...SAMPLE,
      '--out',
      join(out, 's.png'),
    ]);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(existsSync(join(out, 's.png')), 'samples written');
  });

  void test('LoRA: the adapter file samples with --lora on the base', async () => {
    await fixtures();
    const out = at('lora');
    const r = await sumi(
      dreambooth(out, [
        '--base',
        at('text-base'),
        '--instance-data',
        at('inst'),
        '--instance-prompt',
        'a sks digit',
        '--lora-rank',
        '2',
        '--quiet',
      ]),
    );
    assert.equal(r.code, 0, r.stderr);
    const file = join(out, 'pytorch_lora_weights.safetensors');
    assert.ok(existsSync(file), 'LoRA file written');
    const s = await sumi([
      'sample',
      '--model',
      at('text-base'),
      '--lora',
      file,
      '--prompt',
      'a sks digit',
      ...SAMPLE,
      '--out',
      join(out, 's.png'),
    ]);
    assert.equal(s.code, 0, s.stderr);
  });

  void test('bad input: one line, exit 2, nothing written', async () => {
    await fixtures();
    const prompt = ['--instance-prompt', 'a sks digit'];
    const text = ['--base', at('text-base')];
    const cases: [string, string[], RegExp][] = [
      [
        'no prompt',
        [...text, '--instance-data', at('inst')],
        /--dreambooth needs --instance-prompt/,
      ],
      [
        'class base',
        ['--base', at('class-base'), '--instance-data', at('inst'), ...prompt],
        /the base .*class-base is class-conditional \(no tokenizer\/ and text_encoder\/\)/,
      ],
      [
        'missing',
        [...text, '--instance-data', at('nowhere'), ...prompt],
        /instance images: dataset folder '.*nowhere' does not exist/,
      ],
      [
        'empty',
        [...text, '--instance-data', at('empty'), ...prompt],
        /instance images: '.*empty' has no PNG or JPEG images/,
      ],
      [
        'size',
        [...text, '--instance-data', at('big'), ...prompt],
        /instance images: .*0\.png is 16x16 gray; the base takes 8x8 gray images/,
      ],
      [
        'channels',
        [...text, '--instance-data', at('rgb'), ...prompt],
        /instance images: .*0\.png is 8x8 RGB; the base takes 8x8 gray images/,
      ],
    ];
    for (const [what, extra, message] of cases) {
      const out = at(`bad-${what.replace(' ', '-')}`);
      assertInputError(await sumi(dreambooth(out, extra)), message, out);
    }
  });
});
