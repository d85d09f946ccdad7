import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, mean, randn, square, tensor } from '../../../src/engine/index.js';
import { Embedding } from '../../../src/nn/layers.js';
import { ConfigError } from '../../../src/nn/models/config.js';
import { UNet2DModel, type UNet2DModelInput } from '../../../src/nn/models/unet-2d.js';
import { TINY_UNET } from './testing.js';

const tiny = { ...TINY_UNET, in_channels: 2, out_channels: 2 };
const g = new Generator(11);

void describe('UNet2DModel', () => {
  void it("uses diffusers' parameter names", () => {
    const names = new UNet2DModel(tiny).namedParameters().map(([n]) => n);
    for (const n of [
      'conv_in.weight',
      'time_embedding.linear_1.weight',
      'time_embedding.linear_2.bias',
      'down_blocks.0.resnets.0.conv1.weight',
      'down_blocks.0.downsamplers.0.conv.weight',
      'down_blocks.1.attentions.0.group_norm.weight',
      'down_blocks.1.attentions.0.to_q.bias',
      'down_blocks.1.attentions.0.to_out.0.weight',
      'down_blocks.1.resnets.0.conv_shortcut.weight',
      'mid_block.attentions.0.to_k.weight',
      'mid_block.resnets.1.time_emb_proj.weight',
      'up_blocks.0.resnets.1.conv_shortcut.weight',
      'up_blocks.0.upsamplers.0.conv.weight',
      'up_blocks.1.resnets.1.norm2.bias',
      'conv_norm_out.weight',
      'conv_out.bias',
    ]) {
      assert.ok(names.includes(n), `missing ${n}`);
    }
    assert.ok(
      !names.some((n) => n.startsWith('down_blocks.1.downsamplers')),
      'no downsampler in the last down block',
    );
    assert.ok(!names.some((n) => n.startsWith('class_embedding')), 'no class embedding');
  });

  void it('maps [B, C, H, W] and timesteps to the output shape; trains end to end', () => {
    const m = new UNet2DModel(tiny);
    const x = randn([2, 2, 8, 8], { generator: g });
    const y = m.forward(x, [3, 500]);
    assert.deepEqual(y.shape, [2, 2, 8, 8]);
    mean(square(y)).backward();
    assert.ok(
      m.parameters().every((p) => p.grad !== null),
      'every parameter gets a gradient',
    );
    assert.deepEqual(m.forward(x, 7).shape, [2, 2, 8, 8]);
    assert.deepEqual(m.forward(x, tensor([7, 8], [2], { dtype: 'int32' })).shape, [2, 2, 8, 8]);
  });

  void it('needs sizes divisible by 2^(levels − 1)', () => {
    const m = new UNet2DModel(tiny);
    assert.throws(() => m.forward(randn([1, 2, 7, 8], { generator: g }), 1), /divisible by 2/);
  });

  void it('adds a class embedding, and requires labels then', () => {
    const m = new UNet2DModel({ ...tiny, num_class_embeds: 3 });
    assert.deepEqual(
      m.classEmbedding instanceof Embedding && m.classEmbedding.weight.shape,
      [3, 32],
    );
    const x = randn([2, 2, 8, 8], { generator: g });
    const a = m.forward(x, 10, { classLabels: [0, 1] }).dataSync();
    const b = m.forward(x, 10, { classLabels: [2, 1] }).dataSync();
    assert.notEqual(a[0], b[0]);
    assert.equal(a[a.length - 1], b[b.length - 1]);
    assert.throws(() => m.forward(x, 10), /pass classLabels/);
    assert.throws(
      () => new UNet2DModel(tiny).forward(x, 1, { classLabels: [0, 1] }),
      /no class embedding/,
    );
  });

  void it('builds the optional pieces: scale_shift, resnet resamplers, no mid block, timestep classes', () => {
    const x = randn([1, 2, 8, 8], { generator: g });
    for (const extra of [
      { resnet_time_scale_shift: 'scale_shift' },
      {
        downsample_type: 'resnet',
        upsample_type: 'resnet',
        down_block_types: ['AttnDownBlock2D', 'AttnDownBlock2D'],
      },
      { mid_block_type: null, add_attention: false },
      { class_embed_type: 'timestep', center_input_sample: true, act_fn: 'gelu' },
      { attention_head_dim: null, dropout: 0.1, time_embedding_dim: 24 },
    ] as UNet2DModelInput[]) {
      const m = new UNet2DModel({ ...tiny, ...extra });
      const labels = extra.class_embed_type === 'timestep' ? { classLabels: [5] } : {};
      assert.deepEqual(m.forward(x, 1, labels).shape, [1, 2, 8, 8], JSON.stringify(extra));
    }
  });

  void it('names unsupported and unknown config keys', () => {
    assert.throws(
      () =>
        new UNet2DModel({
          ...tiny,
          time_embedding_type: 'fourier',
          foo: 1,
        } as unknown as UNet2DModelInput),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.includes('time_embedding_type: "fourier" is not supported') &&
        e.message.includes('foo: unknown key'),
    );
    assert.throws(
      () => new UNet2DModel({ ...tiny, up_block_types: ['UpBlock2D'] }),
      /up_block_types: has 1 entries/,
    );
    assert.throws(
      () => new UNet2DModel({ ...tiny, norm_num_groups: 3 }),
      /not divisible by norm_num_groups/,
    );
  });

  void it('writes its full config', () => {
    const c = JSON.parse(new UNet2DModel(tiny).configJson()) as Record<string, unknown>;
    assert.equal(c._class_name, 'UNet2DModel');
    assert.equal(c.flip_sin_to_cos, true);
    assert.deepEqual(c.block_out_channels, [8, 16]);
    assert.equal(Object.keys(c).length, 30);
  });
});
