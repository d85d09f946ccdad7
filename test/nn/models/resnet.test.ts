import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { arange, Generator, randn, reshape } from '../../../src/engine/index.js';
import {
  Downsample2D,
  resizeNearest2d,
  ResnetBlock2D,
  Upsample2D,
} from '../../../src/nn/models/resnet.js';

const g = new Generator(3);

void describe('ResnetBlock2D', () => {
  void it('has diffusers parameter names, with a 1×1 shortcut only when the width changes', () => {
    const names = (m: ResnetBlock2D) =>
      m.namedParameters().map(([n]) => n.replace(/\.(weight|bias)$/, ''));
    const same = new ResnetBlock2D({ inChannels: 8, outChannels: 8, tembChannels: 16, groups: 4 });
    assert.deepEqual(
      [...new Set(names(same))],
      ['norm1', 'conv1', 'time_emb_proj', 'norm2', 'conv2'],
    );
    const wider = new ResnetBlock2D({
      inChannels: 8,
      outChannels: 12,
      tembChannels: null,
      groups: 4,
    });
    assert.deepEqual(
      [...new Set(names(wider))],
      ['norm1', 'conv1', 'norm2', 'conv2', 'conv_shortcut'],
    );
    assert.deepEqual(wider.convShortcut!.weight.shape, [12, 8, 1, 1]);
  });

  void it('keeps the shape, applies the time embedding and divides by the output scale factor', () => {
    const x = randn([2, 8, 4, 4], { generator: g });
    const temb = randn([2, 16], { generator: g });
    const a = new ResnetBlock2D({ inChannels: 8, tembChannels: 16, groups: 4 });
    const y = a.forward(x, temb);
    assert.deepEqual(y.shape, [2, 8, 4, 4]);
    const b = new ResnetBlock2D({
      inChannels: 8,
      tembChannels: 16,
      groups: 4,
      outputScaleFactor: 2,
    });
    const bp = b.parameters();
    a.parameters().forEach((p, i) => bp[i]!.setData(p));
    const y2 = b.forward(x, temb).dataSync();
    y.dataSync().forEach((v, i) =>
      assert.ok(Math.abs(v / 2 - y2[i]!) < 1e-6, `element ${i}: output scale 1/2`),
    );
    assert.throws(() => a.forward(x), /needs a time embedding/);
  });

  void it("projects to 2·C with 'scale_shift', and resamples with up/down", () => {
    const s = new ResnetBlock2D({
      inChannels: 8,
      tembChannels: 16,
      groups: 4,
      timeEmbeddingNorm: 'scale_shift',
    });
    assert.deepEqual(s.timeEmbProj!.weight.shape, [16, 16]);
    const x = randn([1, 8, 4, 4], { generator: g });
    const temb = randn([1, 16], { generator: g });
    assert.deepEqual(s.forward(x, temb).shape, [1, 8, 4, 4]);
    const up = new ResnetBlock2D({ inChannels: 8, tembChannels: 16, groups: 4, up: true });
    assert.deepEqual(up.forward(x, temb).shape, [1, 8, 8, 8]);
    const down = new ResnetBlock2D({ inChannels: 8, tembChannels: 16, groups: 4, down: true });
    assert.deepEqual(down.forward(x, temb).shape, [1, 8, 2, 2]);
  });
});

void describe('Downsample2D / Upsample2D', () => {
  void it('halves with a strided conv (padding 1, or 0 with the bottom/right pad) or pooling', () => {
    const x = randn([1, 4, 8, 8], { generator: g });
    assert.deepEqual(new Downsample2D(4, { useConv: true }).forward(x).shape, [1, 4, 4, 4]);
    assert.deepEqual(
      new Downsample2D(4, { useConv: true, padding: 0 }).forward(x).shape,
      [1, 4, 4, 4],
    );
    const pooled = new Downsample2D(4).forward(x);
    assert.deepEqual(pooled.shape, [1, 4, 4, 4]);
    const d = x.dataSync();
    assert.ok(
      Math.abs(pooled.dataSync()[0]! - (d[0]! + d[1]! + d[8]! + d[9]!) / 4) < 1e-6,
      `pooled ${pooled.dataSync()[0]}`,
    );
    assert.deepEqual(
      new Downsample2D(4, { useConv: true }).namedParameters().map(([n]) => n),
      ['conv.weight', 'conv.bias'],
    );
  });

  void it('doubles (nearest) then convolves, or resizes to a given size', () => {
    const x = randn([1, 4, 3, 3], { generator: g });
    assert.deepEqual(new Upsample2D(4, { useConv: true }).forward(x).shape, [1, 4, 6, 6]);
    assert.deepEqual(new Upsample2D(4, { useConv: true }).forward(x, [5, 7]).shape, [1, 4, 5, 7]);
  });
});

void describe('resizeNearest2d', () => {
  void it("picks floor(dst · in/out) as PyTorch's nearest mode", () => {
    const x = reshape(arange(0, 4), [1, 1, 1, 4]);
    assert.deepEqual([...resizeNearest2d(x, [1, 7]).dataSync()], [0, 0, 1, 1, 2, 2, 3]);
    assert.deepEqual(
      [...resizeNearest2d(x, [2, 8]).dataSync()],
      [0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3],
    );
  });
});
