/**
 * LoRA on the command line, on a tiny random model: `sumi sample --lora FILE:0` is the plain
 * model's image and `--lora FILE` is not; `sumi lora merge` writes a folder that samples like the
 * base with the adapter; `sumi train --lora-rank --base` writes the LoRA file and its settings
 * into --out; bad files and options are one line with exit 2.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { decodePng } from '../../src/data/index.js';
import { loadPipeline } from '../../src/diffusion/index.js';
import { randn, tidy } from '../../src/engine/index.js';
import { writeTinyModel } from '../../src/eval/test-models.js';
import {
  createLoraNetwork,
  LORA_WEIGHTS_NAME,
  readSafetensors,
  serializeLora,
  serializeSafetensors,
} from '../../src/nn/index.js';
import { parseLoraSpec } from '../../src/cli/lora.js';
import { assertCleanError, assertInputError, sumiInProcess as sumi } from './run-sumi.js';

let dir = '';
let tiny = '';
let lora = '';
const file = (name: string): string => join(dir, name);

function pixels(path: string): Uint8Array {
  return decodePng(readFileSync(path), path).data as Uint8Array;
}

const SAMPLE = ['--n', '4', '--steps', '3', '--seed', '7', '--quiet'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-lora-cli-'));
  tiny = await writeTinyModel(file('tiny'));
  // Adapters on a convolution, a resnet convolution and a linear layer of the time embedding.
  const p = await loadPipeline(tiny);
  const net = createLoraNetwork(p.model, [
    { path: 'conv_in', rank: 2, alpha: 3 },
    { path: 'up_blocks.0.resnets.0.conv1', rank: 2, alpha: 3 },
    { path: 'time_embedding.linear_1', rank: 3, alpha: 3 },
  ]);
  for (const a of net.adapters.values()) {
    const b = tidy(() => randn(a.loraB.weight.shape, { seed: 3 }).mul(0.5));
    a.loraB.weight.assign(b);
    b.dispose();
  }
  lora = file('pytorch_lora_weights.safetensors');
  await writeFile(lora, await serializeLora(net));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('sumi sample --lora and sumi lora merge', () => {
  void test('FILE[:S]: a numeric suffix is the scale, anything else is part of the path', () => {
    assert.deepEqual(parseLoraSpec('a.safetensors'), { path: 'a.safetensors', scale: 1 });
    assert.deepEqual(parseLoraSpec('a.safetensors:0.5'), { path: 'a.safetensors', scale: 0.5 });
    assert.deepEqual(parseLoraSpec('dir/x:-1e-1'), { path: 'dir/x', scale: -0.1 });
    assert.deepEqual(parseLoraSpec('run:2/b.safetensors'), {
      path: 'run:2/b.safetensors',
      scale: 1,
    });
  });

  void test('scale 0 gives the plain image; scale 1 changes it', async () => {
    const plain = file('plain.png');
    const zero = file('zero.png');
    const one = file('one.png');
    assert.equal((await sumi(['sample', '--model', tiny, ...SAMPLE, '--out', plain])).code, 0);
    const r0 = await sumi([
      'sample',
      '--model',
      tiny,
      ...SAMPLE,
      '--lora',
      `${lora}:0`,
      '--out',
      zero,
    ]);
    assert.equal(r0.code, 0, r0.stderr);
    const r1 = await sumi(['sample', '--model', tiny, ...SAMPLE, `--lora=${lora}`, '--out', one]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.deepEqual(pixels(zero), pixels(plain));
    const a = pixels(one);
    const b = pixels(plain);
    const differ = a.filter((v, i) => v !== b[i]).length;
    assert.ok(
      differ > a.length / 4,
      `the adapter changes the image (${differ} of ${a.length} pixels)`,
    );
  });

  void test('lora merge writes a model that samples like the base with the adapter', async () => {
    const merged = file('merged');
    const r = await sumi([
      'lora',
      'merge',
      '--model',
      tiny,
      '--lora',
      `${lora}:0.5`,
      '--out',
      merged,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /3 layers, rank 2\/3\) merged/);
    const fromMerged = file('from-merged.png');
    const withLora = file('with-lora.png');
    assert.equal(
      (await sumi(['sample', '--model', merged, ...SAMPLE, '--out', fromMerged])).code,
      0,
    );
    const r2 = await sumi([
      'sample',
      '--model',
      tiny,
      ...SAMPLE,
      '--lora',
      `${lora}:0.5`,
      '--out',
      withLora,
    ]);
    assert.equal(r2.code, 0, r2.stderr);
    const a = pixels(fromMerged);
    const b = pixels(withLora);
    const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    assert.ok(worst <= 1, `merged and adapted images agree to 1/255 (worst ${worst})`);
    // The merged weights are the base's plus s·(α/r)·B A.
    const base = await readSafetensors(join(tiny, 'unet', 'diffusion_pytorch_model.safetensors'));
    const m = await readSafetensors(join(merged, 'unet', 'diffusion_pytorch_model.safetensors'));
    const w0 = base.tensors.get('conv_out.weight')!.data;
    const w1 = m.tensors.get('conv_out.weight')!.data;
    assert.ok(
      w0.every((v, i) => v === w1[i]),
      'a layer without an adapter keeps its weights',
    );
    const c0 = base.tensors.get('conv_in.weight')!.data;
    const c1 = m.tensors.get('conv_in.weight')!.data;
    assert.ok(
      c0.some((v, i) => v !== c1[i]),
      'an adapted layer has merged weights',
    );
  });

  void test('a file that does not fit, a missing file: one line, exit 2, nothing written', async () => {
    const bad = file('bad.safetensors');
    await writeFile(
      bad,
      serializeSafetensors([
        {
          name: 'unet.mid_block.attentions.0.to_q.lora_A.weight',
          shape: [2, 16],
          data: new Float32Array(32),
        },
        {
          name: 'unet.mid_block.attentions.0.to_q.lora_B.weight',
          shape: [16, 2],
          data: new Float32Array(32),
        },
      ]),
    );
    const out = file('bad.png');
    assertInputError(
      await sumi(['sample', '--model', tiny, ...SAMPLE, '--lora', bad, '--out', out]),
      /--lora .*bad\.safetensors: 1 LoRA adapters match no Linear\/Conv2d layer of the model: unet\.mid_block\.attentions\.0\.to_q\.lora_A\.weight/,
      out,
    );
    const shape = file('shape.safetensors');
    await writeFile(
      shape,
      serializeSafetensors([
        { name: 'unet.conv_in.lora_A.weight', shape: [2, 3, 3, 3], data: new Float32Array(54) },
        { name: 'unet.conv_in.lora_B.weight', shape: [8, 2, 1, 1], data: new Float32Array(16) },
      ]),
    );
    assertInputError(
      await sumi(['lora', 'merge', '--model', tiny, '--lora', shape, '--out', file('m2')]),
      /unet\.conv_in\.lora_A\.weight is \[2, 3, 3, 3\], expected \[2, 1, 3, 3\]/,
      file('m2'),
    );
    assertInputError(
      await sumi([
        'sample',
        '--model',
        tiny,
        ...SAMPLE,
        '--lora',
        file('none.safetensors'),
        '--out',
        out,
      ]),
      /--lora .*none\.safetensors: /,
      out,
    );
  });
});

void describe('sumi train --lora-rank --base', () => {
  void test('writes pytorch_lora_weights.safetensors and lora_config.json into --out', async () => {
    const out = file('run');
    const r = await sumi([
      'train',
      '--data',
      'mnist',
      '--base',
      tiny,
      '--lora-rank',
      '2',
      '--lora-alpha',
      '4',
      '--lora-targets',
      'conv1,conv2',
      '--steps',
      '2',
      '--batch',
      '4',
      '--warmup',
      '0',
      '--save-every',
      '0',
      '--sample-every',
      '0',
      '--out',
      out,
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(readFileSync(join(out, 'lora_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(info.format, 'sumi-lora');
    assert.equal(info.rank, 2);
    assert.equal(info.alpha, 4);
    assert.equal(info.step, 2);
    assert.match(String(info.baseSha256), /^[0-9a-f]{64}$/);
    assert.deepEqual(info.targets, ['conv1', 'conv2']);
    const f = await readSafetensors(join(out, LORA_WEIGHTS_NAME));
    assert.equal(f.tensors.size, 2 * (info.modules as string[]).length);
    assert.ok(
      [...f.tensors.keys()].every((k) => /^unet\..*\.conv[12]\.lora_[AB]\.weight$/.test(k)),
      'adapters on the resnet convolutions only',
    );
    const s = await sumi([
      'sample',
      '--model',
      tiny,
      ...SAMPLE,
      '--lora',
      join(out, LORA_WEIGHTS_NAME),
      '--out',
      file('trained.png'),
    ]);
    assert.equal(s.code, 0, s.stderr);
  });

  void test('--lora-rank without --base, --base without --lora-rank: usage errors', async () => {
    const out = file('nobase');
    assertCleanError(
      await sumi(['train', '--data', 'mnist', '--lora-rank', '2', '--out', out]),
      2,
      /--lora-rank needs --base/,
    );
    assertCleanError(
      await sumi(['train', '--data', 'mnist', '--base', tiny, '--out', out]),
      2,
      /--base fine-tunes through LoRA adapters: give --lora-rank too/,
    );
    assert.equal(existsSync(out), false);
  });
});
