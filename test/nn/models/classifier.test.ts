import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { Generator, mean, randn, square, tidy } from '../../../src/engine/index.js';
import { assertClose } from '../../engine/testing.js';
import {
  EncoderClassifierModel,
  type EncoderClassifierModelInput,
  ENCODER_CLASSIFIER_DEFAULTS,
} from '../../../src/nn/models/classifier.js';
import { ConfigError } from '../../../src/nn/models/config.js';
import { createModel } from '../../../src/nn/models/create.js';
import { loadModel, saveModel } from '../../../src/nn/models/io.js';

const tiny: EncoderClassifierModelInput = {
  sample_size: 8,
  in_channels: 2,
  num_classes: 3,
  block_out_channels: [8, 16],
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  attention_head_dim: 8,
};

void describe('EncoderClassifierModel', () => {
  void it('names its parameters as the diffusers blocks it is made of', () => {
    const names = new EncoderClassifierModel(tiny).namedParameters().map(([n]) => n);
    for (const n of [
      'conv_in.weight',
      'time_embedding.linear_1.weight',
      'down_blocks.0.resnets.0.time_emb_proj.weight',
      'down_blocks.0.downsamplers.0.conv.weight',
      'down_blocks.1.attentions.0.to_q.weight',
      'down_blocks.1.resnets.0.conv_shortcut.weight',
      'mid_block.attentions.0.group_norm.weight',
      'mid_block.resnets.1.conv2.weight',
      'conv_norm_out.weight',
      'proj_out.weight',
      'proj_out.bias',
    ]) {
      assert.ok(names.includes(n), `missing ${n}`);
    }
    assert.ok(
      !names.some((n) => n.startsWith('down_blocks.1.downsamplers')),
      'the last down block has no downsampler',
    );
    const plain = new EncoderClassifierModel({ ...tiny, time_conditioned: false });
    const plainNames = plain.namedParameters().map(([n]) => n);
    assert.ok(
      !plainNames.some((n) => n.includes('time_emb')),
      'no time embedding and no time projections without time conditioning',
    );
  });

  void it('maps [B, C, H, W] and t to logits [B, K] and features [B, F]', () => {
    tidy(() => {
      const m = new EncoderClassifierModel(tiny, { generator: new Generator(1) });
      const x = randn([3, 2, 8, 8], { seed: 2 });
      const { logits, features } = m.classify(x, [0, 10, 999]);
      assert.deepEqual(logits.shape, [3, 3]);
      assert.deepEqual(features.shape, [3, 16]);
      assert.equal(m.numFeatures, 16);
      assertClose(m.forward(x, [0, 10, 999]), logits, { rtol: 0, atol: 0 });
      assertClose(m.features(x, [0, 10, 999]), features, { rtol: 0, atol: 0 });
      // Global pooling: another image size works too.
      assert.deepEqual(m.forward(randn([1, 2, 12, 12], { seed: 3 }), 5).shape, [1, 3]);
      assert.throws(() => m.forward(randn([1, 3, 8, 8], { seed: 3 }), 5), /\[B, 2, H, W\]/);
      assert.throws(() => m.forward(x), /time-conditioned; pass t/);
    });
  });

  void it('depends on t only when time-conditioned', () => {
    tidy(() => {
      const x = randn([2, 2, 8, 8], { seed: 4 });
      const timed = new EncoderClassifierModel(tiny, { generator: new Generator(5) });
      const a = timed.forward(x, 0).dataSync();
      const b = timed.forward(x, 500).dataSync();
      assert.ok(
        a.some((v, i) => v !== b[i]),
        'a time-conditioned classifier gives different logits at t = 0 and t = 500',
      );
      const plain = new EncoderClassifierModel(
        { ...tiny, time_conditioned: false },
        { generator: new Generator(5) },
      );
      assertClose(plain.forward(x, 0), plain.forward(x, 500), { rtol: 0, atol: 0 });
      assertClose(plain.forward(x), plain.forward(x, 500), { rtol: 0, atol: 0 });
    });
  });

  void it('trains end to end: every parameter gets a gradient', () => {
    tidy(() => {
      const m = new EncoderClassifierModel(tiny, { generator: new Generator(6) });
      const x = randn([2, 2, 8, 8], { seed: 7 });
      mean(square(m.forward(x, [3, 400]))).backward();
      for (const [n, p] of m.namedParameters()) {
        assert.ok(p.grad !== null, `${n} has a gradient`);
      }
      m.zeroGrad();
    });
  });

  void it('rejects bad configs with every problem named', () => {
    assert.throws(
      () =>
        new EncoderClassifierModel({
          ...tiny,
          num_classes: 1,
          down_block_types: ['DownBlock2D'],
          block_out_channels: [8, 18],
        }),
      (e: unknown) =>
        e instanceof ConfigError &&
        /num_classes: expected an integer >= 2/.test(e.message) &&
        !/down_block_types/.test(e.message),
    );
    assert.throws(
      () => new EncoderClassifierModel({ ...tiny, down_block_types: ['DownBlock2D'] }),
      /down_block_types: has 1 entries, expected one per block_out_channels entry \(2\)/,
    );
    assert.throws(
      () => new EncoderClassifierModel({ ...tiny, block_out_channels: [8, 18] }),
      /18 is not divisible by norm_num_groups=4/,
    );
    assert.throws(
      () => new EncoderClassifierModel({ ...tiny, _class_name: 'UNet2DModel' }),
      /expected "EncoderClassifierModel"/,
    );
    assert.equal(ENCODER_CLASSIFIER_DEFAULTS.time_conditioned, true);
  });

  void it('saves and loads as a diffusers-style folder through createModel / loadModel', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sumi-classifier-'));
    try {
      const m = new EncoderClassifierModel(tiny, { generator: new Generator(8) });
      await saveModel(m, dir);
      const back = await loadModel(dir, { as: EncoderClassifierModel });
      assert.deepEqual(back.config, m.config);
      tidy(() => {
        const x = randn([2, 2, 8, 8], { seed: 9 });
        assertClose(back.forward(x, 7), m.forward(x, 7), { rtol: 0, atol: 0 });
      });
      const made = createModel(JSON.parse(m.configJson()) as Record<string, unknown>);
      assert.ok(made instanceof EncoderClassifierModel, 'createModel knows the class name');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
