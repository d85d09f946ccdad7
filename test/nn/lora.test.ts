import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  conv2d,
  Generator,
  linear,
  mean,
  randn,
  square,
  type Tensor,
  tidy,
} from '../../src/engine/index.js';
import { assertClose, gradcheck, maxAbsDiff } from '../engine/testing.js';
import { Attention } from '../../src/nn/attention.js';
import { Conv2d, Linear } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import {
  attachedLoraNetworks,
  createLoraNetwork,
  DEFAULT_LORA_TARGETS,
  findLoraTargets,
  freezeParameters,
  injectLora,
  LoraAdapter,
  LoraError,
  LoraNetwork,
  type LoraTargetLayer,
  matchesLoraTarget,
} from '../../src/nn/lora.js';
import { UNet2DModel } from '../../src/nn/models/unet-2d.js';
import { TINY_UNET } from './models/testing.js';

const f64 = { dtype: 'float64' as const };
let seed = 300;
const rnd = (shape: readonly number[], dtype: 'float32' | 'float64' = 'float64'): Tensor =>
  randn(shape, { seed: seed++, dtype });

/** A model holding one layer at path 'l'. */
class Holder extends Module {
  constructor(readonly layer: LoraTargetLayer) {
    super();
    this.child('l', layer);
  }
}

/** Element-wise identity of two float arrays (=== per element; counts the differences). */
function sameBits(a: Tensor, b: Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  assert.equal(x.length, y.length);
  let diff = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) diff++;
  return diff;
}

/** Draws B away from zero (a trained adapter), deterministically. */
function randomizeB(net: LoraNetwork, scale = 0.3): void {
  for (const a of net.adapters.values()) {
    const b = a.loraB.weight;
    const r = tidy(() => rnd(b.shape, b.dtype as 'float32' | 'float64').mul(scale));
    b.assign(r);
    r.dispose();
  }
}

/** W x + b + f·B A x written out with the engine's linear/conv2d, for one layer. */
function reference(layer: LoraTargetLayer, x: Tensor, a: Tensor, b: Tensor, f: number): Tensor {
  if (layer instanceof Linear) {
    return linear(x, layer.weight, layer.bias).add(linear(linear(x, a), b).mul(f));
  }
  const base = conv2d(x, layer.weight, layer.bias, layer.opts);
  return base.add(conv2d(conv2d(x, a, null, layer.opts), b).mul(f));
}

void describe('LoRA adapters', () => {
  void it("match targets by peft's rule: the path or its last components", () => {
    assert.ok(matchesLoraTarget('down_blocks.1.attentions.0.to_q', 'to_q'), 'suffix');
    assert.ok(matchesLoraTarget('mid_block.attentions.0.to_out.0', 'to_out.0'), 'dotted suffix');
    assert.ok(matchesLoraTarget('to_q', 'to_q'), 'whole path');
    assert.ok(!matchesLoraTarget('down_blocks.1.attentions.0.add_to_q', 'to_q'), 'not a part');
    assert.ok(!matchesLoraTarget('mid_block.attentions.0.to_out.1', 'to_out.0'), 'other index');
  });

  void it("find the U-Net's attention projections by default, under diffusers' names", () => {
    const m = new UNet2DModel(TINY_UNET);
    const paths = findLoraTargets(m).map(([p]) => p);
    assert.deepEqual(DEFAULT_LORA_TARGETS, ['to_q', 'to_k', 'to_v', 'to_out.0']);
    // One attention in down_blocks.1, one in the mid block, two in up_blocks.0.
    assert.equal(paths.length, 16);
    for (const p of [
      'down_blocks.1.attentions.0.to_q',
      'mid_block.attentions.0.to_v',
      'up_blocks.0.attentions.1.to_out.0',
    ]) {
      assert.ok(paths.includes(p), `missing ${p}`);
    }
    const net = injectLora(m, { rank: 2 });
    assert.ok(
      net
        .namedParameters()
        .some(([n]) => n === 'down_blocks.1.attentions.0.to_out.0.lora_A.weight'),
      'peft parameter names',
    );
    assert.deepEqual(net.adapters.get('mid_block.attentions.0.to_k')!.loraB.weight.shape, [16, 2]);
  });

  void it('refuse targets that are not Linear/Conv2d, and targets that match nothing', () => {
    const m = new UNet2DModel(TINY_UNET);
    assert.throws(() => findLoraTargets(m, ['to_out']), /to_out' is a ModuleList/);
    assert.throws(() => findLoraTargets(m, ['to_z']), /no module of the model matches .*to_z/);
    assert.throws(
      () => createLoraNetwork(m, [{ path: 'x.y', rank: 2, alpha: 2 }]),
      /no module 'x.y'/,
    );
    assert.throws(
      () => createLoraNetwork(m, [{ path: 'conv_in', rank: 0, alpha: 2 }]),
      /rank for 'conv_in' must be a positive integer, got 0/,
    );
  });

  void it('leave the output bit-exactly unchanged when injected (B = 0)', () => {
    const m = new UNet2DModel({ ...TINY_UNET, num_class_embeds: 3 });
    const x = rnd([2, 1, 8, 8], 'float32');
    const before = m.forward(x, [3, 700], { classLabels: [0, 2] });
    const net = injectLora(m, { rank: 4, alpha: 8, targets: [...DEFAULT_LORA_TARGETS, 'conv_in'] });
    assert.equal(net.adapters.size, 17);
    const after = m.forward(x, [3, 700], { classLabels: [0, 2] });
    assert.equal(sameBits(after, before), 0, 'identical outputs');
    // A is drawn from U(±1/√fan_in), B is zero.
    const a = net.adapters.get('conv_in')!.loraA.weight;
    const bound = 1 / Math.sqrt(1 * 3 * 3);
    const av = [...a.dataSync()];
    assert.ok(
      av.every((v) => Math.abs(v) <= bound) && Math.max(...av.map(Math.abs)) > 0.5 * bound,
      'A within and across ±1/√fan_in',
    );
    assert.ok(
      [...net.adapters.values()].every((ad) => ad.loraB.weight.dataSync().every((v) => v === 0)),
      'B = 0',
    );
  });

  void it('compute W x + s·(α/r)·B A x on Linear, 3×3 and 1×1 Conv2d layers', async () => {
    const layers: [LoraTargetLayer, number[]][] = [
      [new Linear(5, 3), [2, 4, 5]],
      [new Conv2d(3, 4, 3, { padding: 1, stride: 2 }), [2, 3, 6, 5]],
      [new Conv2d(3, 2, 1), [1, 3, 4, 4]],
    ];
    for (const [layer, xShape] of layers) {
      const model = await new Holder(layer).to(f64);
      const net = createLoraNetwork(model, [{ path: 'l', rank: 2, alpha: 3 }]).attach(0.7);
      randomizeB(net);
      const ad = net.adapters.get('l')!;
      assert.equal(ad.loraA.weight.dtype, 'float64');
      const x = rnd(xShape);
      const a = ad.loraA.weight;
      const b = ad.loraB.weight;
      assertClose(layer.forward(x), reference(layer, x, a, b, 0.7 * (3 / 2)), {
        rtol: 1e-12,
        atol: 1e-12,
      });
      net.detach();
      assertClose(layer.forward(x), reference(layer, x, a, b, 0), { rtol: 0, atol: 0 });
    }
  });

  void it('merge into the weights (same outputs) and unmerge back within float rounding', () => {
    for (const layer of [new Linear(16, 12), new Conv2d(4, 6, 3, { padding: 1 })]) {
      const w0 = Float32Array.from(layer.weight.dataSync());
      const net = createLoraNetwork(new Holder(layer), [{ path: 'l', rank: 3, alpha: 5 }]).attach(
        1.5,
      );
      randomizeB(net, 1);
      const x = layer instanceof Linear ? rnd([3, 16], 'float32') : rnd([2, 4, 5, 5], 'float32');
      const adapted = layer.forward(x);
      net.merge();
      assert.throws(() => net.merge(), /already merged/);
      assert.ok(net.merged, 'merged');
      // Merged: the weights carry the product and the forward no longer adds it.
      assertClose(layer.forward(x), adapted, { rtol: 1e-5, atol: 1e-5 });
      const delta = net.adapters.get('l')!.weightDelta().dataSync();
      const merged = layer.weight.dataSync();
      const moved = maxAbsDiff(merged, w0);
      assert.ok(moved > 0.1, `merge moved the weights (max ${moved})`);
      net.unmerge();
      assert.throws(() => net.unmerge(), /not merged/);
      const back = layer.weight.dataSync();
      // (W + d) − d in float32: off by at most an ulp of W + d, plus an ulp of the rounded d.
      for (let i = 0; i < w0.length; i++) {
        const d = Math.abs(delta[i]! * 1.5 * (5 / 3));
        const tol = (Math.abs(w0[i]!) + 2 * d) * 2 ** -23;
        assert.ok(
          Math.abs(back[i]! - w0[i]!) <= tol,
          `element ${i}: ${back[i]} vs ${w0[i]} (tolerance ${tol})`,
        );
      }
      assertClose(layer.forward(x), adapted, { rtol: 1e-5, atol: 1e-5 });
      net.detach();
    }
  });

  void it('stack several networks, each with its scale, and detach back to the plain layer', () => {
    const layer = new Linear(6, 4);
    const x = rnd([3, 6], 'float32');
    const base = layer.forward(x);
    const n1 = createLoraNetwork(new Holder(layer), [{ path: 'l', rank: 2, alpha: 2 }]).attach(0.5);
    const n2 = createLoraNetwork(new Holder(layer), [{ path: 'l', rank: 3, alpha: 6 }]).attach(
      -1.5,
    );
    randomizeB(n1);
    randomizeB(n2);
    assert.deepEqual(attachedLoraNetworks(layer), [n1, n2]);
    const d1 = n1.adapters.get('l')!.delta(x);
    const d2 = n2.adapters.get('l')!.delta(x);
    const want = base.add(d1.mul(0.5 * 1)).add(d2.mul(-1.5 * 2));
    assertClose(layer.forward(x), want, { rtol: 1e-5, atol: 1e-6 });
    n2.scale = 0;
    assertClose(layer.forward(x), base.add(d1.mul(0.5)), { rtol: 1e-5, atol: 1e-6 });
    n1.detach();
    n2.detach();
    assert.deepEqual(attachedLoraNetworks(layer), []);
    assert.ok(!Object.hasOwn(layer, 'forward'), "the class's own forward is back");
    assert.equal(sameBits(layer.forward(x), base), 0);
  });

  void it('gradients through the adapted layer check against finite differences in float64', () => {
    const cases: [string, LoraTargetLayer, number[]][] = [
      ['Linear', new Linear(4, 3), [2, 4]],
      ['Conv2d 3×3', new Conv2d(2, 3, 3, { padding: 1, stride: 2 }), [1, 2, 5, 4]],
    ];
    for (const [name, layer, xShape] of cases) {
      for (const p of layer.parameters()) {
        const v = p.cast('float64');
        p.setData(v);
        v.dispose();
      }
      const proto = createLoraNetwork(new Holder(layer), [
        { path: 'l', rank: 2, alpha: 3 },
      ]).adapters.get('l')!;
      const b0 = rnd(proto.loraB.weight.shape).mul(0.5);
      // x, A and B are the inputs: the adapter is rebuilt around gradcheck's float64 copies.
      const fn = (x: Tensor, a: Tensor, b: Tensor): Tensor => {
        const net = new LoraNetwork();
        net.addAdapter('l', new LoraAdapter(layer, 2, 3, a, b));
        net.attach(0.8);
        try {
          return layer.forward(x);
        } finally {
          net.detach();
        }
      };
      gradcheck(fn, [rnd(xShape), proto.loraA.weight, b0], { name: `${name} LoRA` });
    }
  });

  void it('train only the adapters when the base is frozen: no gradient reaches base weights', () => {
    const a = new Attention(8, { heads: 2, dimHead: 4, bias: true });
    freezeParameters(a);
    const net = injectLora(a, { rank: 2, generator: new Generator(5) });
    randomizeB(net);
    mean(square(a.forward(rnd([2, 5, 8], 'float32')))).backward();
    assert.ok(
      a.parameters().every((p) => p.grad === null && !p.requiresGrad),
      'base has no grads',
    );
    assert.equal(net.parameters().length, 8);
    assert.ok(
      net.parameters().every((p) => p.grad !== null),
      'every A and B has a gradient',
    );
  });

  void it('name a second adapter on one path', () => {
    const m = new UNet2DModel(TINY_UNET);
    assert.throws(
      () =>
        createLoraNetwork(m, [
          { path: 'conv_in', rank: 1, alpha: 1 },
          { path: 'conv_in', rank: 1, alpha: 1 },
        ]),
      (e: unknown) => e instanceof LoraError && /two adapters for module 'conv_in'/.test(e.message),
    );
  });
});
