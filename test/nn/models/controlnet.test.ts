import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  abs,
  Generator,
  max,
  rand,
  randn,
  tensor,
  type Tensor,
} from '../../../src/engine/index.js';
import { assertClose } from '../../engine/testing.js';
import {
  ControlledDenoiser,
  ControlNetModel,
  controlNetMismatch,
  CONTROLNET_SCHEMA,
} from '../../../src/nn/models/controlnet.js';
import { resolveConfig } from '../../../src/nn/models/config.js';
import { UNet2DConditionModel } from '../../../src/nn/models/unet-2d-condition.js';
import { TINY_COND_UNET } from './testing.js';
import { UNet2DModel, type UNet2DModelInput } from '../../../src/nn/models/unet-2d.js';

const tinyUNet: UNet2DModelInput = {
  sample_size: 8,
  in_channels: 1,
  out_channels: 1,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  norm_num_groups: 4,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
  attention_head_dim: 8,
  num_class_embeds: 3,
};

const maxAbs = async (t: Tensor): Promise<number> => (await max(abs(t)).data())[0]!;

void describe('ControlNetModel', () => {
  void it("has diffusers' key names: the encoder's, the condition embedding, one zero conv per skip", () => {
    const unet = new UNet2DConditionModel(TINY_COND_UNET, { generator: new Generator(1) });
    const cn = ControlNetModel.fromUNet(unet, { conditioningEmbeddingOutChannels: [4, 8] });
    const names = new Map(cn.namedParameters().map(([n, p]) => [n, p.shape]));
    // conv_in + (1 resnet + 1 downsampler) + (1 resnet) = 4 skips.
    for (let i = 0; i < 4; i++) assert.ok(names.has(`controlnet_down_blocks.${i}.weight`), `${i}`);
    assert.ok(!names.has('controlnet_down_blocks.4.weight'), 'no fifth zero conv');
    assert.deepEqual(names.get('controlnet_down_blocks.1.weight'), [8, 8, 1, 1]);
    assert.deepEqual(names.get('controlnet_down_blocks.3.weight'), [16, 16, 1, 1]);
    assert.deepEqual(names.get('controlnet_mid_block.weight'), [16, 16, 1, 1]);
    assert.deepEqual(names.get('controlnet_cond_embedding.conv_in.weight'), [4, 3, 3, 3]);
    assert.deepEqual(names.get('controlnet_cond_embedding.blocks.0.weight'), [4, 4, 3, 3]);
    assert.deepEqual(names.get('controlnet_cond_embedding.blocks.1.weight'), [8, 4, 3, 3]);
    assert.deepEqual(names.get('controlnet_cond_embedding.conv_out.weight'), [8, 8, 3, 3]);
    assert.ok(
      names.has('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight'),
      'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight',
    );
    assert.ok(
      names.has('mid_block.attentions.0.proj_out.weight'),
      'mid_block.attentions.0.proj_out.weight',
    );
    assert.ok(names.has('time_embedding.linear_1.weight'), 'time_embedding.linear_1.weight');
    assert.ok(
      ![...names.keys()].some((n) => n.startsWith('up_blocks') || n.startsWith('conv_out')),
      'no decoder weights',
    );
    // Every encoder weight is the U-Net's, bit for bit, in storage of its own.
    const own = new Map(unet.namedParameters());
    for (const [n, p] of cn.namedParameters()) {
      if (n.startsWith('controlnet_')) continue;
      assert.deepEqual(p.dataSync(), own.get(n)!.dataSync(), n);
      assert.notEqual(p, own.get(n));
    }
    // diffusers' config: its keys only for a UNet2DConditionModel base.
    const json = JSON.parse(cn.configJson()) as Record<string, unknown>;
    assert.equal(json._class_name, 'ControlNetModel');
    assert.equal(json.unet_class_name, undefined);
    assert.deepEqual(json.conditioning_embedding_out_channels, [4, 8]);
    assert.equal(json.cross_attention_dim, 6);
    const again = resolveConfig(CONTROLNET_SCHEMA, json).config;
    assert.deepEqual(again, cn.config);
  });

  void it('a fresh ControlNet leaves the U-Net output unchanged; trained zero convs change it', async () => {
    for (const build of [
      () => new UNet2DModel(tinyUNet, { generator: new Generator(2) }),
      () => new UNet2DConditionModel(TINY_COND_UNET, { generator: new Generator(3) }),
    ]) {
      const unet = build();
      const plainUNet = unet instanceof UNet2DModel;
      const cn = ControlNetModel.fromUNet(unet, {
        conditioningChannels: 1,
        conditioningEmbeddingOutChannels: [4, 8],
        generator: new Generator(4),
      });
      const g = new Generator(9);
      const c = plainUNet ? 1 : 4;
      const x = randn([2, c, 8, 8], { generator: g });
      const image = rand([2, 1, 16, 16], { generator: g });
      const states = plainUNet ? null : randn([2, 3, 6], { generator: g });
      const labels = plainUNet ? [0, 2] : null;
      const plain = unet.denoise(x, [10, 700], {
        classLabels: labels ? labelsOf(labels) : null,
        encoderHiddenStates: states,
      });
      const controlled = new ControlledDenoiser(unet, cn, 1);
      const withCn = controlled.denoise(x, [10, 700], {
        classLabels: labels ? labelsOf(labels) : null,
        encoderHiddenStates: states,
        controlnetCond: image,
      });
      assert.deepEqual(withCn.dataSync(), plain.dataSync(), `${unet.className}: identity at init`);
      // Non-zero zero convs: the output moves, and scale 0 brings it back.
      for (const [n, p] of cn.namedParameters()) {
        if (n.startsWith('controlnet_down_blocks') || n.startsWith('controlnet_mid_block')) {
          p.setData(randn(p.shape, { generator: g }).mul(0.1));
        }
      }
      const moved = controlled.denoise(x, [10, 700], {
        classLabels: labels ? labelsOf(labels) : null,
        encoderHiddenStates: states,
        controlnetCond: image,
      });
      assert.ok((await maxAbs(moved.sub(plain))) > 1e-3, `${unet.className}: residuals act`);
      controlled.conditioningScale = 0;
      const off = controlled.denoise(x, [10, 700], {
        classLabels: labels ? labelsOf(labels) : null,
        encoderHiddenStates: states,
        controlnetCond: image,
      });
      assertClose(off, plain, { rtol: 0, atol: 0 }, 'scale 0');
    }
  });

  void it('refuses a condition image of the wrong size and a U-Net it does not fit', () => {
    const unet = new UNet2DModel(tinyUNet, { generator: new Generator(2) });
    const cn = ControlNetModel.fromUNet(unet, {
      conditioningChannels: 1,
      conditioningEmbeddingOutChannels: [4],
    });
    const x = randn([1, 1, 8, 8], { generator: new Generator(1) });
    assert.throws(
      () =>
        cn.forward(x, 5, rand([1, 1, 16, 16], { generator: new Generator(1) }), {
          classLabels: [1],
        }),
      /condition image is \[1, 1, 16, 16\], expected \[1, 1, 8, 8\]/,
    );
    const other = new UNet2DModel({ ...tinyUNet, block_out_channels: [8, 24] });
    assert.deepEqual(controlNetMismatch(cn, other), [
      'block_out_channels: controlnet [8,16], model [8,24]',
    ]);
    assert.throws(() => new ControlledDenoiser(other, cn), /does not fit the UNet2DModel/);
    assert.throws(
      () =>
        new UNet2DModel(tinyUNet).denoise(x, 5, {
          controlnetCond: rand([1, 1, 8, 8], { generator: new Generator(1) }),
        }),
      /without a ControlNet/,
    );
  });
});

function labelsOf(ids: number[]): Tensor {
  return tensor(Int32Array.from(ids), [ids.length], { dtype: 'int32' });
}
