/** The autograd tape: accumulation, noGrad/detach, graph lifetime, order, depth, errors. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as E from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { record } from '../../src/engine/tensor.js';
import { assertClose } from './testing.js';

const f64 = { dtype: 'float64' } as const;
const leaf = (data: number[]): Tensor =>
  E.tensor(Float64Array.from(data), [data.length], { requiresGrad: true });
const vals = (x: Tensor | null): number[] => {
  assert.ok(x !== null, 'expected a gradient');
  return Array.from(x.dataSync());
};

void describe('gradient accumulation', () => {
  void test('a tensor used twice gets the sum of both paths', () => {
    E.tidy(() => {
      const x = leaf([1, -2, 3]);
      // y = x·x + x: dy/dx = 2x + 1
      E.sum(E.add(E.mul(x, x), x)).backward();
      assert.deepEqual(vals(x.grad), [3, -3, 7]);
      const z = leaf([1, 2]);
      E.sum(E.add(z, z)).backward();
      assert.deepEqual(vals(z.grad), [2, 2]);
    });
  });

  void test('diamond: two branches that meet again', () => {
    E.tidy(() => {
      const x = leaf([0.5, 2]);
      const a = E.exp(x);
      const b = E.mul(a, 3);
      const c = E.sin(a);
      // d/dx Σ(3 e^x + sin e^x) = e^x (3 + cos e^x)
      E.sum(E.add(b, c)).backward();
      assertClose(
        vals(x.grad),
        [0.5, 2].map((v) => Math.exp(v) * (3 + Math.cos(Math.exp(v)))),
        { rtol: 1e-14 },
      );
    });
  });

  void test('gradients add up across two backward calls until zeroGrad', () => {
    E.tidy(() => {
      const x = leaf([1, 2]);
      E.sum(E.mul(x, 3)).backward();
      E.sum(E.square(x)).backward();
      assert.deepEqual(vals(x.grad), [5, 7]); // 3 + 2x
      x.zeroGrad();
      assert.equal(x.grad, null);
      E.sum(E.mul(x, 3)).backward();
      assert.deepEqual(vals(x.grad), [3, 3]);
    });
  });

  void test('only leaves that require grad receive .grad; broadcast inputs get summed gradients', () => {
    E.tidy(() => {
      const w = leaf([2]);
      const c = E.tensor(Float64Array.from([1, 2, 3]), [3]);
      const h = E.mul(c, w);
      E.sum(E.mul(h, h)).backward();
      assert.equal(c.grad, null);
      assert.equal(h.grad, null);
      assert.deepEqual(vals(w.grad), [56]); // Σ 2 c² w = 2·14·2
    });
  });
});

void describe('noGrad and detach', () => {
  void test('noGrad records nothing and restores the previous state, even on throw', () => {
    E.tidy(() => {
      const x = leaf([1, 2]);
      assert.equal(E.isGradEnabled(), true);
      const y = E.noGrad(() => {
        assert.equal(E.isGradEnabled(), false);
        E.noGrad(() => undefined);
        assert.equal(E.isGradEnabled(), false);
        return E.mul(x, 2);
      });
      assert.equal(E.isGradEnabled(), true);
      assert.equal(y.requiresGrad, false);
      assert.equal(y.node, null);
      assert.throws(() => E.sum(y).backward(), /does not require grad/);
      assert.throws(() =>
        E.noGrad(() => {
          throw new Error('boom');
        }),
      );
      assert.equal(E.isGradEnabled(), true);
      assert.equal(E.mul(x, 2).requiresGrad, true);
    });
  });

  void test('enableGrad records inside noGrad and restores the previous state, even on throw', () => {
    E.tidy(() => {
      const x = leaf([1, 2]);
      const grads = E.noGrad(() => {
        const y = E.enableGrad(() => {
          assert.equal(E.isGradEnabled(), true, 'enabled inside enableGrad');
          return E.mul(x, x);
        });
        assert.equal(E.isGradEnabled(), false, 'noGrad again after enableGrad returns');
        assert.equal(y.requiresGrad, true, 'the op inside enableGrad recorded a node');
        assert.equal(E.mul(x, 2).requiresGrad, false, 'ops after enableGrad record nothing');
        E.enableGrad(() => E.sum(y).backward());
        return vals(x.grad);
      });
      assert.deepEqual(grads, [2, 4]); // d/dx Σ x² = 2x
      assert.throws(() =>
        E.noGrad(() =>
          E.enableGrad(() => {
            throw new Error('boom');
          }),
        ),
      );
      assert.equal(E.isGradEnabled(), true, 'the outer state is back after a throw');
      E.noGrad(() => {
        assert.throws(() =>
          E.enableGrad(() => {
            throw new Error('boom');
          }),
        );
        assert.equal(E.isGradEnabled(), false, 'noGrad is back after a throw in enableGrad');
      });
    });
  });

  void test('detach shares values and cuts the graph', () => {
    E.tidy(() => {
      const x = leaf([1, 2]);
      const y = E.mul(x, 3);
      const d = y.detach();
      assert.equal(d.requiresGrad, false);
      assert.equal(d.storage, y.storage);
      // z = y · detach(y): only the first factor carries gradient, dz/dx = 3 · y
      E.sum(E.mul(y, d)).backward();
      assert.deepEqual(vals(x.grad), [9, 18]);
    });
  });

  void test('requireGrad marks leaves only', () => {
    E.tidy(() => {
      const x = leaf([1]);
      const y = E.mul(x, 2);
      assert.throws(() => y.requireGrad(), /only leaf tensors/);
      const c = E.tensor([1, 2], undefined, f64).requireGrad();
      assert.equal(c.requiresGrad, true);
      c.requireGrad(false);
      assert.equal(E.mul(c, 2).requiresGrad, false);
    });
  });
});

void describe('backward', () => {
  void test('a non-scalar output needs an explicit gradient', () => {
    E.tidy(() => {
      const x = leaf([1, 2, 3]);
      const y = E.mul(x, x);
      assert.throws(() => y.backward(), /tensor \[3\] is not a scalar; pass a gradient/);
      const g = E.tensor(Float64Array.from([1, 10, 100]));
      y.backward(g);
      assert.deepEqual(vals(x.grad), [2, 40, 600]);
      assert.deepEqual(vals(g), [1, 10, 100]); // the caller's gradient is left intact
      assert.throws(
        () => E.mul(x, 2).backward(E.ones([2], f64)),
        /gradient \[2\] for tensor \[3\]/,
      );
    });
  });

  void test('backward from a leaf and from a 0-d or [1] root', () => {
    E.tidy(() => {
      const x = E.tensor(2, undefined, { dtype: 'float64', requiresGrad: true });
      x.backward();
      assert.deepEqual(vals(x.grad), [1]);
      const y = leaf([3]);
      E.mul(y, y).backward();
      assert.deepEqual(vals(y.grad), [6]);
    });
  });

  void test('retainGraph keeps the graph for a second pass; without it a second pass throws', () => {
    E.tidy(() => {
      const x = leaf([1, 2]);
      const h = E.exp(x);
      const loss = E.sum(h);
      loss.backward(undefined, { retainGraph: true });
      loss.backward();
      assertClose(vals(x.grad), [2 * Math.E, 2 * Math.exp(2)], { rtol: 1e-15 });
      // The first graph is freed now: going through it again is an error, not a silent no-op.
      assert.throws(() => loss.backward(), /already freed by an earlier backward/);
      assert.throws(() => E.sum(E.mul(h, 2)).backward(), /already freed/);
      assertClose(vals(x.grad), [2 * Math.E, 2 * Math.exp(2)], { rtol: 1e-15 });
    });
  });

  void test('after backward the graph holds no references to intermediates', () => {
    E.tidy(() => {
      const x = leaf([1]);
      const a = E.exp(x);
      const b = E.mul(a, 2);
      b.backward();
      assert.equal(a.node?.inputs.length ?? 0, 0);
      assert.equal(b.node?.inputs.length ?? 0, 0);
      const c = E.mul(E.exp(x), 2);
      c.backward(undefined, { retainGraph: true });
      assert.equal(c.node?.inputs.length, 2);
    });
  });

  void test('a deep chain of 20,000 ops does not overflow the stack', () => {
    E.tidy(() => {
      const x = leaf([1]);
      const c = 1 + 1e-5;
      let y: Tensor = x;
      for (let i = 0; i < 20_000; i++) y = E.mul(y, c);
      E.sum(y).backward();
      assertClose(vals(x.grad), [c ** 20_000], { rtol: 1e-12 });
    });
  });

  void test('deterministic order: each VJP runs after all its consumers, in the same order every run', () => {
    const run = (): { log: string[]; grad: number[] } => {
      const log: string[] = [];
      /** Identity with a logging VJP. */
      const id = (name: string, x: Tensor): Tensor =>
        record(
          E.noGrad(() => E.mul(x, 1)),
          name,
          [x],
          (g) => {
            log.push(name);
            return [g];
          },
        );
      return E.tidy(() => {
        const x = leaf([0.1, 0.2, 0.3]);
        const a = id('a', x);
        const b = id('b', E.sin(a));
        const c = id('c', E.cos(a));
        const d = id('d', E.mul(b, c));
        const e = id('e', E.add(d, b));
        E.sum(E.mul(e, a)).backward();
        return { log, grad: vals(x.grad) };
      });
    };
    const first = run();
    assert.equal(first.log.length, 5);
    const pos = (n: string): number => first.log.indexOf(n);
    assert.ok(
      pos('e') < pos('d') && pos('d') < pos('b') && pos('d') < pos('c'),
      first.log.join(' '),
    );
    assert.ok(pos('b') < pos('a') && pos('c') < pos('a'), first.log.join(' '));
    for (let i = 0; i < 3; i++) {
      const again = run();
      assert.deepEqual(again.log, first.log);
      assert.deepEqual(again.grad, first.grad); // bit-identical
    }
  });

  void test('errors: backward without any input requiring grad; a VJP of the wrong shape', () => {
    E.tidy(() => {
      assert.throws(() => E.sum(E.ones([2])).backward(), /does not require grad/);
      const x = leaf([1, 2]);
      const bad = record(
        E.noGrad(() => E.sum(x)),
        'bad',
        [x],
        (g) => [g],
      );
      assert.throws(
        () => bad.backward(),
        /bad gave a gradient of shape \[\] for an input of shape \[2\]/,
      );
    });
  });
});
