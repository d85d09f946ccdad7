/** Memory rules: tidy/keep scopes, dispose, views sharing storage, assign, and a leak check. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';

const cpu = E.cpuBackend();
const live = (): number => cpu.liveCount();
const f64 = { dtype: 'float64' } as const;

void describe('tidy and keep', () => {
  void test('frees intermediates and keeps what fn returns, in nested arrays and objects', () => {
    const before = live();
    let inner: Tensor | null = null;
    const out = E.tidy(() => {
      const a = E.ones([2, 3]);
      inner = E.exp(a);
      const b = E.mul(inner, 2);
      const c = E.sum(b);
      return { c, list: [b, [E.neg(c)]], label: 'x', n: 3 };
    });
    assert.equal(live() - before, 3);
    assert.equal(inner!.isDisposed, true);
    assert.equal(out.c.isDisposed, false);
    assert.equal(out.label, 'x');
    assert.ok(Math.abs(out.c.itemSync() - 12 * Math.E) < 1e-4, `c = ${out.c.itemSync()}`);
    const [b, [negC]] = out.list as [Tensor, [Tensor]];
    assert.equal(b.isDisposed, false);
    assert.ok(Math.abs(negC.itemSync() + 12 * Math.E) < 1e-4, `−c = ${negC.itemSync()}`);
    out.c.dispose();
    b.dispose();
    negC.dispose();
    assert.equal(live(), before);
  });

  void test('tensors made outside any scope are never tracked', () => {
    const outside = E.ones([2]);
    E.tidy(() => E.add(outside, 1));
    assert.equal(outside.isDisposed, false);
    outside.dispose();
  });

  void test('a nested tidy hands its result to the enclosing scope', () => {
    const before = live();
    let fromInner: Tensor | null = null;
    const kept = E.tidy(() => {
      fromInner = E.tidy(() => E.add(E.ones([2]), 1));
      assert.equal(fromInner.isDisposed, false);
      return E.mul(fromInner, 2);
    });
    assert.equal(fromInner!.isDisposed, true);
    assert.deepEqual(Array.from(kept.dataSync()), [4, 4]);
    kept.dispose();
    assert.equal(live(), before);
  });

  void test('keep saves a tensor from every open scope', () => {
    const before = live();
    let saved: Tensor | null = null;
    let dropped: Tensor | null = null;
    E.tidy(() =>
      E.tidy(() => {
        saved = E.keep(E.ones([3]));
        dropped = E.ones([3]);
      }),
    );
    assert.equal(saved!.isDisposed, false);
    assert.equal(dropped!.isDisposed, true);
    assert.equal(live() - before, 1);
    saved!.dispose();
  });

  void test('an exception disposes everything made inside and propagates', () => {
    const before = live();
    assert.throws(
      () =>
        E.tidy(() => {
          E.ones([4]);
          E.zeros([4]);
          throw new Error('inside');
        }),
      /inside/,
    );
    assert.equal(live(), before);
  });

  void test('an async fn is rejected', () => {
    assert.throws(() => E.tidy(() => Promise.resolve(1)), /fn must be synchronous/);
  });
});

void describe('dispose and views', () => {
  void test('use after dispose throws a clear error; dispose twice is harmless', () => {
    const a = E.ones([2, 3]);
    const id = a.id;
    a.dispose();
    a.dispose();
    assert.equal(a.isDisposed, true);
    const msg = new RegExp(`tensor #${id} \\[2, 3\\] was used after dispose\\(\\)`);
    assert.throws(() => a.dataSync(), msg);
    assert.throws(() => E.add(a, 1), msg);
    assert.throws(() => E.reshape(a, [6]), msg);
    assert.throws(() => a.alias(), msg);
  });

  void test('backward through a disposed intermediate fails instead of giving wrong gradients', () => {
    const x = E.tensor([1, 2], undefined, { ...f64, requiresGrad: true });
    const y = E.tidy(() => E.add(E.mul(x, 2), 1)); // the mul result is freed by tidy
    assert.throws(() => E.sum(y).backward(), /was disposed before backward\(\) reached it/);
    assert.equal(x.grad, null);
    x.dispose();
    y.dispose();
  });

  void test('views share storage and outlive the original', () => {
    const before = live();
    const a = E.tensor([1, 2, 3, 4, 5, 6]);
    const v = E.reshape(a, [2, 3]);
    const u = E.unsqueeze(v, 0);
    const d = a.detach();
    assert.equal(v.storage, a.storage);
    assert.equal(u.storage, a.storage);
    assert.equal(d.storage, a.storage);
    assert.equal(live() - before, 1);
    a.dispose();
    v.dispose();
    assert.deepEqual(Array.from(u.dataSync()), [1, 2, 3, 4, 5, 6]);
    assert.equal(live() - before, 1);
    u.dispose();
    assert.equal(live() - before, 1);
    d.dispose();
    assert.equal(live(), before);
  });

  void test('a view of the wrong size throws and leaves no trace on later tensors', () => {
    const before = live();
    const a = E.tensor([1, 2, 3, 4]);
    assert.throws(() => E.Tensor.view(a, [3]), /shape \[3\] needs 3 elements, storage has 4/);
    const b = E.tensor([9, 9]);
    assert.notEqual(b.storage, a.storage);
    assert.deepEqual(Array.from(b.dataSync()), [9, 9]);
    assert.equal(live() - before, 2);
    // a is still the only owner of its storage: disposing it frees the storage.
    a.dispose();
    assert.equal(live() - before, 1);
    b.dispose();
    assert.equal(live(), before);
  });

  void test('a view returned from tidy survives its base being freed', () => {
    const before = live();
    const v = E.tidy(() => E.reshape(E.add(E.ones([4]), 1), [2, 2]));
    assert.deepEqual(Array.from(v.dataSync()), [2, 2, 2, 2]);
    v.dispose();
    assert.equal(live(), before);
  });
});

void describe('assign', () => {
  void test('keeps identity, flags and storage count; refuses another shape or dtype', () => {
    const before = live();
    const p = E.tensor([1, 2, 3], undefined, { ...f64, requiresGrad: true });
    const ref = p;
    const id = p.id;
    E.tidy(() => {
      p.assign(E.mul(p, 10));
    });
    assert.equal(ref, p);
    assert.equal(p.id, id);
    assert.equal(p.requiresGrad, true);
    assert.equal(p.isDisposed, false);
    assert.deepEqual(Array.from(p.dataSync()), [10, 20, 30]);
    assert.equal(live() - before, 1);
    E.tidy(() => {
      assert.throws(() => p.assign(E.zeros([2], f64)), /assign: expected float64 \[3\]/);
      assert.throws(() => p.assign(E.zeros([3])), /assign: expected float64 \[3\]/);
    });
    p.dispose();
    assert.equal(live(), before);
  });

  void test('a tensor made inside tidy and assigned to survives the scope', () => {
    const before = live();
    let q: Tensor | null = null;
    E.tidy(() => {
      q = E.zeros([2], f64);
      q.assign(E.add(q, 5));
    });
    assert.equal(q!.isDisposed, false);
    assert.deepEqual(Array.from(q!.dataSync()), [5, 5]);
    q!.dispose();
    assert.equal(live(), before);
  });
});

void describe('leak check', () => {
  void test('liveCount stays flat over 1,000 tidy’d training steps with backward', () => {
    // A 3-8-1 MLP with SiLU fit to y = sin(x₀) + x₁ x₂ by plain SGD; parameters live outside.
    const gen = new E.Generator(42);
    const w1 = E.noGrad(() => E.mul(E.randn([8, 3], { generator: gen, dtype: 'float64' }), 0.5));
    const b1 = E.zeros([8], f64);
    const w2 = E.noGrad(() => E.mul(E.randn([1, 8], { generator: gen, dtype: 'float64' }), 0.5));
    const b2 = E.zeros([1], f64);
    const params = [w1, b1, w2, b2];
    for (const p of params) p.requireGrad();
    const x = E.noGrad(() => E.rand([16, 3], { seed: 7, dtype: 'float64' }));
    const y = E.noGrad(() => {
      const [x0, x1, x2] = [0, 1, 2].map((i) => E.slice(x, [0, i], [16, i + 1]));
      return E.add(E.sin(x0!), E.mul(x1!, x2!));
    });
    const step = (): number =>
      E.tidy(() => {
        const h = E.silu(E.linear(x, w1, b1));
        const out = E.linear(h, w2, b2);
        const loss = E.mean(E.square(E.sub(out, y)));
        loss.backward();
        E.noGrad(() => {
          for (const p of params) {
            p.assign(E.sub(p, E.mul(p.grad!, 0.1)));
            p.zeroGrad();
          }
        });
        return loss.itemSync();
      });
    const first = step();
    const baseline = live();
    let last = first;
    for (let i = 1; i < 1000; i++) {
      last = step();
      if (i % 250 === 0) assert.equal(live(), baseline, `step ${i}`);
    }
    assert.equal(live(), baseline);
    assert.ok(last < first / 2, `loss ${first} -> ${last}: the steps did not train`);
    for (const p of [...params, x, y]) p.dispose();
  });

  void test('number operands outside a scope leave only the result allocated', () => {
    const x = E.ones([3]);
    const before = live();
    const y = E.mul(E.add(x, 2), 0.5);
    const c = E.where(E.gt(x, 0), 1, x);
    // mul, add, gt and where outputs: the 0-d tensors made for 2, 0.5, 0 and 1 are freed.
    assert.equal(live(), before + 4);
    for (const t of [x, y, c]) t.dispose();
  });
});
