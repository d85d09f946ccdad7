/**
 * The PatchGAN discriminator (shapes, LeakyReLU, per-sample independence with GroupNorm, config
 * checks) and the EMA codebook of VQ-VAE (the update and Laplace smoothing against a hand
 * computation, dead-code restarts, state round trip).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { concat, Generator, randn, slice, tensor } from '../../../src/engine/index.js';
import {
  BuildContext,
  checkPatchDiscriminator,
  CodebookEma,
  PATCH_DISCRIMINATOR_DEFAULTS,
  PatchDiscriminator,
  patchLogitSize,
  VectorQuantizer,
} from '../../../src/nn/models/index.js';
import { assertClose } from '../../engine/testing.js';

void describe('PatchDiscriminator', () => {
  void it('gives one logit per patch: 32 -> 16 -> 8 -> 7 -> 6 with two stride-2 layers', () => {
    const d = new PatchDiscriminator(
      { inChannels: 3, channels: 8, numLayers: 2, normNumGroups: 4 },
      { generator: new Generator(1) },
    );
    const y = d.forward(randn([2, 3, 32, 32], { generator: new Generator(2) }));
    assert.deepEqual(y.shape, [2, 1, 6, 6]);
    assert.equal(patchLogitSize(32, 2), 6);
    assert.equal(patchLogitSize(32, 3), 2);
    assert.equal(patchLogitSize(8, 1), 2);
    assert.equal(d.layers.items.length, 4);
    // The first and last convolutions have biases, the normalized ones not.
    const names = d.namedParameters().map(([n]) => n);
    assert.ok(names.includes('layers.0.conv.bias'), "names.includes('layers.0.conv.bias')");
    assert.ok(!names.includes('layers.1.conv.bias'), "!names.includes('layers.1.conv.bias')");
    assert.ok(names.includes('layers.1.norm.weight'), "names.includes('layers.1.norm.weight')");
    assert.ok(names.includes('layers.3.conv.bias'), "names.includes('layers.3.conv.bias')");
  });

  void it('judges each sample on its own (GroupNorm, not BatchNorm)', () => {
    const d = new PatchDiscriminator(
      { inChannels: 1, channels: 4, numLayers: 1, normNumGroups: 2 },
      { generator: new Generator(3) },
    );
    const a = randn([1, 1, 8, 8], { generator: new Generator(4) });
    const b = randn([1, 1, 8, 8], { generator: new Generator(5) });
    const both = d.forward(concat([a, b]));
    assertClose(slice(both, [0], [1, 1, 2, 2]), d.forward(a), { rtol: 1e-5, atol: 1e-6 });
  });

  void it('LeakyReLU(0.2) passes 0.2 of a negative input', () => {
    const d = new PatchDiscriminator({
      inChannels: 1,
      channels: 1,
      numLayers: 1,
      normNumGroups: null,
    });
    const first = d.layers.items[0]!;
    first.conv.weight.setData(tensor(new Float32Array(16).fill(0), [1, 1, 4, 4]));
    first.conv.bias!.setData(tensor([-1], [1]));
    const y = first.forward(randn([1, 1, 4, 4], { generator: new Generator(6) }));
    assertClose(y, [-0.2, -0.2, -0.2, -0.2], { rtol: 1e-6 });
  });

  void it('refuses sizes with no patch left and groups that do not divide the widths', () => {
    const c = { ...PATCH_DISCRIMINATOR_DEFAULTS, channels: 12, numLayers: 3, normNumGroups: 16 };
    const problems = checkPatchDiscriminator(c, 16);
    assert.ok(
      problems.some((p) =>
        /normNumGroups 16 must divide every normalized width \(24, 48, 96\)/.test(p),
      ),
      problems.join('; '),
    );
    assert.ok(
      problems.some((p) => /3 stride-2 layers leave no patch of a 16x16 image/.test(p)),
      problems.join('; '),
    );
    assert.deepEqual(checkPatchDiscriminator(PATCH_DISCRIMINATOR_DEFAULTS, 32), []);
  });

  void it('asks the groups to divide only the normalized widths (the first layer has no norm)', () => {
    // widths 4 (no norm), 8, 16: 8 groups divide every normalized one
    const c = { inChannels: 3, channels: 4, numLayers: 2, normNumGroups: 8 };
    assert.deepEqual(checkPatchDiscriminator(c, 32), []);
    const d = new PatchDiscriminator(c, { generator: new Generator(8) });
    assert.deepEqual(
      d.forward(randn([1, 3, 32, 32], { generator: new Generator(9) })).shape,
      [1, 1, 6, 6],
    );
    assert.deepEqual(checkPatchDiscriminator({ ...c, normNumGroups: 16 }, 32), [
      'normNumGroups 16 must divide every normalized width (8, 16)',
    ]);
  });
});

void describe('CodebookEma', () => {
  void it('follows N ← γN + (1−γ)n, M ← γM + (1−γ)s, e = M / Laplace-smoothed N', async () => {
    const q = new VectorQuantizer(3, 2, 0.25);
    q.embedding.weight.setData(tensor([1, 0, 0, 1, -1, -1], [3, 2]));
    const ema = new CodebookEma(q, 0.5, 0.1);
    assert.throws(() => ema.update([0, 0], [0]), /call start\(\)/);
    await ema.start();
    // four vectors: three to row 0, one to row 2, none to row 1
    const z = [2, 0, 4, 0, 0, 2, -3, -1];
    ema.update(z, [0, 0, 0, 2]);
    const N = [0.5 + 0.5 * 3, 0.5, 0.5 + 0.5 * 1];
    const M = [
      [0.5 * 1 + 0.5 * 6, 0.5 * 0 + 0.5 * 2],
      [0, 0.5],
      [-0.5 - 1.5, -0.5 - 0.5],
    ];
    assert.deepEqual(Array.from(ema.clusterSize), N);
    const total = N[0]! + N[1]! + N[2]!;
    const want = M.flatMap((row, k) => {
      const smoothed = ((N[k]! + 0.1) / (total + 3 * 0.1)) * total;
      return row.map((v) => v / smoothed);
    });
    assertClose(q.embedding.weight, want, { rtol: 1e-6 });
  });

  void it('moves dead rows onto batch vectors and restores its sums from a state dict', async () => {
    const q = new VectorQuantizer(4, 2, 0.25, new BuildContext({ generator: new Generator(7) }));
    const ema = new CodebookEma(q, 0.5);
    await ema.start();
    const z = [5, 5, 6, 6];
    // rows 1..3 unused: N = 0.5 < 0.6 → restarted onto z[floor(u · 2)]
    const n = ema.update(z, [0, 0], { threshold: 0.6, uniforms: [0, 0.1, 0.9, 0.4] });
    assert.equal(n, 3);
    assert.deepEqual(Array.from(ema.clusterSize).slice(1), [1, 1, 1]);
    assert.deepEqual(Array.from(ema.embedSum).slice(2), [5, 5, 6, 6, 5, 5]);
    const sd = ema.stateDict();
    const other = new CodebookEma(new VectorQuantizer(4, 2), 0.5);
    other.loadStateDict(sd);
    assert.deepEqual(Array.from(other.clusterSize), Array.from(ema.clusterSize));
    assert.deepEqual(Array.from(other.embedSum), Array.from(ema.embedSum));
    assert.throws(
      () => new CodebookEma(new VectorQuantizer(5, 2), 0.5).loadStateDict(sd, 'x.safetensors'),
      /x\.safetensors: expected cluster_size \[5\] and embed_sum \[5, 2\]/,
    );
    // as many values in the other layout are refused too, not read row by row
    const transposed = new Map([
      ['cluster_size', sd.get('cluster_size')!],
      ['embed_sum', tensor(new Float64Array(8), [2, 4])],
    ]);
    assert.throws(
      () => other.loadStateDict(transposed, 'y.safetensors'),
      /y\.safetensors: expected cluster_size \[4\] and embed_sum \[4, 2\], found \[4\] and \[2, 4\]/,
    );
    assert.deepEqual(Array.from(other.embedSum), Array.from(ema.embedSum), 'nothing loaded');
  });
});
