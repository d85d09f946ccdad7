import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, randn, tensor } from '../../../src/engine/index.js';
import { AutoencoderKL, type AutoencoderKLInput } from '../../../src/nn/models/autoencoder-kl.js';
import { DiagonalGaussianDistribution } from '../../../src/nn/models/vae.js';

const tiny: AutoencoderKLInput = {
  in_channels: 3,
  out_channels: 3,
  latent_channels: 2,
  block_out_channels: [8, 16],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  norm_num_groups: 4,
  sample_size: 8,
};
const g = new Generator(9);

void describe('AutoencoderKL', () => {
  void it("downsamples by 2^(levels − 1) and uses diffusers' names", () => {
    const m = new AutoencoderKL(tiny);
    const x = randn([2, 3, 8, 8], { generator: g });
    const post = m.encode(x);
    assert.deepEqual(post.mean.shape, [2, 2, 4, 4]);
    assert.deepEqual(m.decode(post.mode()).shape, [2, 3, 8, 8]);
    assert.deepEqual(m.forward(x, { samplePosterior: true, generator: g }).shape, [2, 3, 8, 8]);
    assert.equal(m.downsampleFactor, 2);
    const names = new Map(m.namedParameters().map(([n, p]) => [n, p.shape]));
    assert.deepEqual(names.get('encoder.conv_out.weight'), [4, 16, 3, 3]);
    assert.deepEqual(names.get('quant_conv.weight'), [4, 4, 1, 1]);
    assert.deepEqual(names.get('post_quant_conv.weight'), [2, 2, 1, 1]);
    assert.deepEqual(names.get('decoder.up_blocks.0.upsamplers.0.conv.weight'), [16, 16, 3, 3]);
    assert.deepEqual(names.get('encoder.down_blocks.0.downsamplers.0.conv.weight'), [8, 8, 3, 3]);
    assert.deepEqual(names.get('decoder.mid_block.attentions.0.to_v.weight'), [16, 16]);
    assert.equal(names.get('decoder.up_blocks.1.resnets.1.conv1.weight')?.[0], 8);
  });

  void it('drops the quant convs and mid attention when the config says so', () => {
    const m = new AutoencoderKL({
      ...tiny,
      use_quant_conv: false,
      use_post_quant_conv: false,
      mid_block_add_attention: false,
    });
    const names = m.namedParameters().map(([n]) => n);
    assert.ok(
      !names.some((n) => n.includes('quant_conv') || n.includes('attentions')),
      'no quant_conv and no attention',
    );
    assert.deepEqual(m.forward(randn([1, 3, 8, 8], { generator: g })).shape, [1, 3, 8, 8]);
  });
});

void describe('DiagonalGaussianDistribution', () => {
  const params = tensor(Float64Array.from([0.5, -1, 100, -100]), [1, 4, 1, 1], {
    dtype: 'float64',
  });
  const d = new DiagonalGaussianDistribution(params);

  void it('splits [mean; logvar] on channels and clamps logvar to [−30, 20]', () => {
    assert.deepEqual([...d.mean.dataSync()], [0.5, -1]);
    assert.deepEqual([...d.logvar.dataSync()], [20, -30]);
    assert.ok(
      Math.abs(d.std.dataSync()[0]! - Math.exp(10)) < 1e-6 * Math.exp(10),
      `std ${d.std.dataSync()[0]}`,
    );
  });

  void it('has the closed-form KL to N(0, I) and to another Gaussian', () => {
    const kl = (m: number, lv: number) => 0.5 * (m * m + Math.exp(lv) - 1 - lv);
    const want = kl(0.5, 20) + kl(-1, -30);
    assert.ok(
      Math.abs(d.kl().dataSync()[0]! - want) < 1e-9 * want,
      `KL ${d.kl().dataSync()[0]}, want ${want}`,
    );
    assert.ok(Math.abs(d.kl(d).dataSync()[0]!) < 1e-12, 'KL to itself is 0');
  });

  void it('samples mean + std · ε from the generator, reproducibly', () => {
    const p = tensor(Float64Array.from([1, 2, 0, 0]), [1, 4, 1, 1], { dtype: 'float64' });
    const q = new DiagonalGaussianDistribution(p);
    const a = q.sample(new Generator(1)).dataSync();
    const b = q.sample(new Generator(1)).dataSync();
    assert.deepEqual([...a], [...b]);
    const eps = randn([1, 2, 1, 1], { generator: new Generator(1), dtype: 'float64' }).dataSync();
    assert.ok(Math.abs(a[0]! - (1 + eps[0]!)) < 1e-12, `sample ${a[0]}, want ${1 + eps[0]!}`);
    assert.equal(q.mode(), q.mean);
  });
});
