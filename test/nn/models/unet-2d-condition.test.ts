import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, mean, randn, square } from '../../../src/engine/index.js';
import {
  UNet2DConditionModel,
  type UNet2DConditionModelInput,
} from '../../../src/nn/models/unet-2d-condition.js';
import { TINY_COND_UNET } from './testing.js';

const g = new Generator(5);

void describe('UNet2DConditionModel', () => {
  void it("reads attention_head_dim as the number of heads, with diffusers' names", () => {
    const m = new UNet2DConditionModel(TINY_COND_UNET);
    const t = m.downBlocks.at(0) as unknown as {
      attentions: {
        at(i: number): {
          transformerBlocks: { at(i: number): { attn1: { heads: number; dimHead: number } } };
        };
      };
    };
    const attn1 = t.attentions.at(0).transformerBlocks.at(0).attn1;
    assert.equal(attn1.heads, 2);
    assert.equal(attn1.dimHead, 4);
    const names = new Map(m.namedParameters().map(([n, p]) => [n, p.shape]));
    const a = 'down_blocks.0.attentions.0';
    assert.deepEqual(names.get(`${a}.proj_in.weight`), [8, 8, 1, 1]);
    assert.deepEqual(names.get(`${a}.transformer_blocks.0.attn2.to_k.weight`), [8, 6]);
    assert.deepEqual(names.get(`${a}.transformer_blocks.0.ff.net.0.proj.weight`), [64, 8]);
    assert.deepEqual(names.get(`${a}.transformer_blocks.0.ff.net.2.weight`), [8, 32]);
    assert.ok(names.has(`${a}.transformer_blocks.0.norm3.bias`), `${a}: norm3`);
    assert.ok(!names.has(`${a}.transformer_blocks.0.attn1.to_q.bias`), 'no q/k/v bias');
    assert.ok(names.has('mid_block.attentions.0.proj_out.weight'), 'the mid block proj_out');
    assert.ok(names.has('up_blocks.1.attentions.1.norm.weight'), 'the up block attention norm');
  });

  void it('maps sample + encoder states to the output, with gradients to both', () => {
    const m = new UNet2DConditionModel(TINY_COND_UNET);
    const x = randn([2, 4, 8, 8], { generator: g }).requireGrad();
    const ctx = randn([2, 3, 6], { generator: g }).requireGrad();
    const y = m.forward(x, [1, 999], ctx);
    assert.deepEqual(y.shape, [2, 4, 8, 8]);
    mean(square(y)).backward();
    assert.ok(x.grad && ctx.grad, 'gradients reach the input and the context');
    assert.throws(() => m.forward(x, 1, null), /pass encoderHiddenStates/);
    assert.ok(
      m.parameters().every((p) => p.grad !== null),
      'every parameter has a gradient',
    );
  });

  void it('uses linear projections when asked, and resizes for sizes the upsamplers cannot double', () => {
    const m = new UNet2DConditionModel({ ...TINY_COND_UNET, use_linear_projection: true });
    const names = new Map(m.namedParameters().map(([n, p]) => [n, p.shape]));
    assert.deepEqual(names.get('down_blocks.0.attentions.0.proj_in.weight'), [8, 8]);
    const ctx = randn([1, 3, 6], { generator: g });
    assert.deepEqual(m.forward(randn([1, 4, 7, 5], { generator: g }), 3, ctx).shape, [1, 4, 7, 5]);
  });

  void it('supports per-block lists, class labels and a plain mid block', () => {
    const m = new UNet2DConditionModel({
      ...TINY_COND_UNET,
      attention_head_dim: [2, 4],
      layers_per_block: [1, 2],
      transformer_layers_per_block: [2, 1],
      num_class_embeds: 3,
      mid_block_type: 'UNetMidBlock2D',
      time_embedding_act_fn: 'silu',
    });
    const ctx = randn([1, 3, 6], { generator: g });
    assert.deepEqual(
      m.forward(randn([1, 4, 8, 8], { generator: g }), 3, ctx, { classLabels: [2] }).shape,
      [1, 4, 8, 8],
    );
    assert.equal(m.downBlocks.at(1).resnets.length, 2);
    assert.equal(m.upBlocks.at(0).resnets.length, 3);
    assert.throws(
      () => m.forward(randn([1, 4, 8, 8], { generator: g }), 3, ctx),
      /pass classLabels/,
    );
  });

  void it('rejects what diffusers has and Sumi does not', () => {
    assert.throws(
      () =>
        new UNet2DConditionModel({
          ...TINY_COND_UNET,
          num_attention_heads: 4,
        } as unknown as UNet2DConditionModelInput),
      /num_attention_heads: only null/,
    );
    assert.throws(
      () =>
        new UNet2DConditionModel({
          ...TINY_COND_UNET,
          addition_embed_type: 'text_time',
        } as unknown as UNet2DConditionModelInput),
      /addition_embed_type/,
    );
    assert.throws(
      () =>
        new UNet2DConditionModel({
          ...TINY_COND_UNET,
          down_block_types: ['SimpleCrossAttnDownBlock2D', 'DownBlock2D'],
        } as unknown as UNet2DConditionModelInput),
      /is not supported/,
    );
  });
});
