import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cpuBackend, type Tensor, tensor } from '../../src/engine/index.js';
import { assertClose } from '../engine/testing.js';
import { EMA, emaDecay, type EmaOptions } from '../../src/nn/ema.js';
import { Module } from '../../src/nn/module.js';

/** Two parameters with values we set by hand. */
class Tiny extends Module {
  readonly w: Tensor;
  readonly b: Tensor;
  constructor(w: number[], b: number) {
    super();
    this.w = this.param('w', tensor(w, [w.length], { dtype: 'float64' }));
    this.b = this.param('b', tensor([b], [1], { dtype: 'float64' }));
  }
  set(w: number[], b: number): void {
    const tw = tensor(w, [w.length], { dtype: 'float64' });
    const tb = tensor([b], [1], { dtype: 'float64' });
    this.w.assign(tw);
    this.b.assign(tb);
    tw.dispose();
    tb.dispose();
  }
}

/** diffusers' EMAModel.get_decay, transcribed. */
function getDecayRef(optimizationStep: number, o: Required<EmaOptions>): number {
  const step = Math.max(0, optimizationStep - o.updateAfterStep - 1);
  if (step <= 0) return 0.0;
  let cur: number;
  if (o.warmup === 'power') cur = 1 - (1 + step / o.invGamma) ** -o.power;
  else if (o.warmup === 'ratio') cur = (1 + step) / (10 + step);
  else cur = o.decay;
  cur = Math.min(cur, o.decay);
  return Math.max(cur, o.minDecay);
}

void describe('emaDecay', () => {
  const base: Required<EmaOptions> = {
    decay: 0.9999,
    minDecay: 0,
    updateAfterStep: 0,
    warmup: 'power',
    invGamma: 1,
    power: 2 / 3,
  };

  void it('is 0 on the first step (the shadow copies the model)', () => {
    for (const warmup of ['power', 'ratio', 'none'] as const) {
      assert.equal(emaDecay(1, { warmup }), 0);
    }
  });

  void it('power warmup: 1 − (1 + step/invGamma)^−power', () => {
    assert.equal(emaDecay(2), 1 - 2 ** (-2 / 3));
    assert.equal(emaDecay(11, { invGamma: 2, power: 0.75 }), 1 - 6 ** -0.75);
    // @crowsonkb's note: power 2/3 reaches 0.999 at ~31.6K steps.
    assert.ok(
      Math.abs(emaDecay(31_624) - 0.999) < 1e-6,
      `decay at 31,624 steps: ${emaDecay(31_624)}`,
    );
  });

  void it('ratio warmup: (1 + step)/(10 + step), capped by decay', () => {
    assert.equal(emaDecay(2, { warmup: 'ratio' }), 2 / 11);
    assert.equal(emaDecay(1001, { warmup: 'ratio', decay: 0.99 }), 0.99);
  });

  void it('matches diffusers get_decay over a grid of settings', () => {
    for (const warmup of ['power', 'ratio', 'none'] as const) {
      for (const updateAfterStep of [0, 3]) {
        for (const minDecay of [0, 0.5]) {
          const o = { ...base, warmup, updateAfterStep, minDecay, decay: 0.95 };
          for (let s = 0; s < 60; s++) assert.equal(emaDecay(s, o), getDecayRef(s, o));
        }
      }
    }
  });

  void it('updateAfterStep delays averaging', () => {
    const o = { updateAfterStep: 3, warmup: 'ratio' as const };
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((s) => emaDecay(s, o)),
      [0, 0, 0, 0, 2 / 11],
    );
  });
});

void describe('EMA', () => {
  void it('first step copies, later steps blend s ← s − (1 − d)(s − θ)', () => {
    const model = new Tiny([1, 2], 3);
    const ema = new EMA(model, { warmup: 'ratio' });
    model.set([5, 6], 7);
    ema.step(model);
    assert.equal(ema.curDecay, 0);
    let sd = ema.stateDict();
    assert.deepEqual([...sd.get('w')!.dataSync()], [5, 6]);
    model.set([10, 0], -1);
    ema.step(model);
    const d = 2 / 11;
    assert.equal(ema.curDecay, d);
    sd = ema.stateDict();
    assertClose(sd.get('w')!, [5 - (1 - d) * (5 - 10), 6 - (1 - d) * (6 - 0)], { rtol: 1e-15 });
    assertClose(sd.get('b')!, [7 - (1 - d) * (7 + 1)], { rtol: 1e-15 });
    assert.equal(ema.optimizationStep, 2);
  });

  void it('frozen parameters are copied, not averaged', () => {
    const model = new Tiny([1], 1);
    model.b.requireGrad(false);
    const ema = new EMA(model, { warmup: 'none', decay: 0.9 });
    ema.step(model);
    model.set([2], 2);
    ema.step(model);
    const sd = ema.stateDict();
    assertClose(sd.get('w')!, [1 - 0.1 * (1 - 2)], { rtol: 1e-15 });
    assert.deepEqual([...sd.get('b')!.dataSync()], [2]);
  });

  void it('averaging a constant model keeps it constant', () => {
    const model = new Tiny([0.25, -3], 1.5);
    const ema = new EMA(model, { warmup: 'power', power: 0.75 });
    for (let i = 0; i < 20; i++) ema.step(model);
    assert.deepEqual([...ema.stateDict().get('w')!.dataSync()], [0.25, -3]);
  });

  void it('copyTo writes the average into a model; store/restore bring the weights back', () => {
    const model = new Tiny([1, 1], 1);
    const ema = new EMA(model, { warmup: 'none', decay: 0.5 });
    ema.step(model);
    model.set([3, 5], 9);
    ema.step(model);
    ema.store(model);
    const w = model.w;
    ema.copyTo(model);
    assert.equal(model.w, w, 'copyTo keeps parameter identity');
    assert.deepEqual([...model.w.dataSync()], [2, 3]);
    assert.deepEqual([...model.b.dataSync()], [5]);
    ema.restore(model);
    assert.deepEqual([...model.w.dataSync()], [3, 5]);
    assert.throws(() => ema.restore(model), /nothing was stored/);
  });

  void it('copyTo into a float32 copy of the model casts', async () => {
    const model = new Tiny([1, 2], 3);
    const ema = new EMA(model);
    const other = new Tiny([0, 0], 0);
    await other.to({ dtype: 'float32' });
    ema.copyTo(other);
    assert.equal(other.w.dtype, 'float32');
    assert.deepEqual([...other.w.dataSync()], [1, 2]);
  });

  void it('rejects a model with other parameters', () => {
    const ema = new EMA(new Tiny([1, 2], 3));
    assert.throws(() => ema.step(new Tiny([1, 2, 3], 0)), /'w'/);
    class Other extends Module {
      constructor() {
        super();
        this.param('v', tensor([1]));
      }
    }
    assert.throws(() => ema.copyTo(new Other()), /not averaged: v; not in the model: w, b/);
  });

  void it('stateDict carries the model names; loadStateDict round-trips and checks first', async () => {
    const model = new Tiny([1, 2], 3);
    const ema = new EMA(model, { warmup: 'ratio' });
    for (let i = 0; i < 5; i++) {
      model.set([i, 2 * i], -i);
      ema.step(model);
    }
    const sd = ema.stateDict();
    assert.deepEqual([...sd.keys()], ['w', 'b']);

    const ema2 = new EMA(new Tiny([0, 0], 0), { warmup: 'ratio' });
    await ema2.loadStateDict(sd, { optimizationStep: ema.optimizationStep });
    for (let i = 5; i < 8; i++) {
      model.set([i, 2 * i], -i);
      ema.step(model);
      ema2.step(model);
    }
    assert.deepEqual(ema2.stateDict().get('w')!.dataSync(), ema.stateDict().get('w')!.dataSync());

    const bad = new Map([
      ['w', tensor([1, 2, 3], [3], { dtype: 'float64' })],
      ['c', tensor([1])],
    ]);
    const before = [...ema2.stateDict().get('w')!.dataSync()];
    await assert.rejects(ema2.loadStateDict(bad, { source: 'ema.safetensors' }), (e) => {
      const msg = (e as Error).message;
      assert.match(msg, /ema\.safetensors/);
      assert.match(msg, /mis-shaped: w: expected \[2\], found \[3\]/);
      assert.match(msg, /missing: b/);
      assert.match(msg, /unexpected: c/);
      return true;
    });
    assert.deepEqual([...ema2.stateDict().get('w')!.dataSync()], before);
  });

  void it('does not leak over many steps', () => {
    const backend = cpuBackend();
    const model = new Tiny([1, 2, 3], 4);
    const ema = new EMA(model);
    ema.step(model); // the shadow shares the parameters' storage after this copy...
    ema.step(model); // ...and owns its own from here on
    const live = backend.liveCount();
    for (let i = 0; i < 100; i++) ema.step(model);
    assert.equal(backend.liveCount(), live);
    ema.dispose();
  });
});
