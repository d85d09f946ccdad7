/**
 * Gradient checks: every differentiable case of the op table, autograd against central finite
 * differences in float64 on the CPU backend, over two seeds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as E from '../../src/engine/index.js';
import { record, type Tensor } from '../../src/engine/tensor.js';
import { assertClose, gradcheck } from './testing.js';
import { gradInputs, makeInputs, opCases } from './op-cases.js';

const SEEDS = [1, 2];

void describe('gradcheck of every differentiable op case (float64, central differences)', () => {
  for (const oc of opCases.filter((c) => c.differentiable)) {
    void test(oc.name, () => {
      for (const seed of SEEDS) {
        E.tidy(() => {
          const xs = makeInputs(oc, seed);
          const wrt = gradInputs(oc.inputs(seed));
          assert.ok(wrt.length > 0, `${oc.name}: no input to check`);
          const r = gradcheck(oc.apply, xs, {
            wrt,
            name: `${oc.name} (seed ${seed})`,
            ...oc.gradcheck,
          });
          assert.equal(
            r.checked,
            wrt.reduce((n, i) => n + xs[i]!.size, 0),
          );
        });
      }
    });
  }
});

void describe('the op table', () => {
  /** Exports that are not ops: creation, RNG, scopes, backends, shape helpers, generic dispatch. */
  const notOps = new Set([
    'Generator',
    'Tensor',
    'arange',
    'binary',
    'composite',
    'conv2dSpec',
    'cpuBackend',
    'defaultBackend',
    'fmtShape',
    'fmtShapeOf',
    'full',
    'fullLike',
    'getBackend',
    'initBackend',
    'initDefaultBackend',
    'enableGrad',
    'isGradEnabled',
    'keep',
    'linspace',
    'noGrad',
    'ones',
    'onesLike',
    'ownScope',
    'rand',
    'randn',
    'registerBackend',
    'scalarLike',
    'setCpuHelperThreads',
    'setDefaultBackend',
    'sizeOf',
    'tensor',
    'tidy',
    'transfer',
    'unary',
    'zeros',
    'zerosLike',
  ]);

  void test('covers every exported op', () => {
    const covered = new Set(opCases.map((c) => c.op));
    const exported = Object.entries(E)
      .filter(([k, v]) => typeof v === 'function' && !notOps.has(k))
      .map(([k]) => k);
    const missing = exported.filter((k) => !covered.has(k));
    assert.deepEqual(
      missing,
      [],
      `ops without a case in test/engine/op-cases.ts: ${missing.join(', ')}`,
    );
    for (const op of covered) assert.ok(op in E, `case for unknown op ${op}`);
  });

  void test('names are unique and inputs are deterministic per seed', () => {
    const names = opCases.map((c) => c.name);
    assert.equal(new Set(names).size, names.length);
    for (const oc of opCases) {
      const a = oc.inputs(5);
      const b = oc.inputs(5);
      const c = oc.inputs(6);
      assert.deepEqual(a, b, oc.name);
      if (a.some((s) => s.data.length > 1 && !(s.data instanceof Int32Array))) {
        assert.notDeepEqual(a, c, `${oc.name}: seed does not change the inputs`);
      }
    }
  });

  void test('every case runs forward on float64 inputs', () => {
    for (const oc of opCases) {
      E.tidy(() => {
        const y = oc.apply(...makeInputs(oc, 3));
        const intOut =
          ['argmax', 'cast', 'eq', 'ne'].includes(oc.op) && oc.name !== 'cast/same-dtype';
        // oneHot's dtype is its own argument (float32 by default), not its int32 input's.
        const expected = intOut ? 'int32' : oc.op === 'oneHot' ? 'float32' : 'float64';
        assert.equal(y.dtype, expected, oc.name);
        assert.ok(
          y.dataSync().every((v) => Number.isFinite(v)),
          `${oc.name}: non-finite output`,
        );
      });
    }
  });
});

void describe('gradcheck itself', () => {
  /** y = x² with a deliberately wrong VJP (g·x instead of 2·g·x). */
  const badSquare = (x: Tensor): Tensor => {
    const out = E.noGrad(() => E.square(x));
    return record(out, 'badSquare', [x], (g) => [E.mul(g, x)]);
  };

  void test('catches a wrong VJP and names the input and element', () => {
    E.tidy(() => {
      const x = E.tensor([0.5, -1.25, 2], [3], { dtype: 'float64' });
      let message = '';
      try {
        gradcheck(badSquare, [x], { name: 'badSquare' });
      } catch (e) {
        message = (e as Error).message;
      }
      assert.match(message, /^badSquare: gradient of input 0 \[3\] .*3 of 3 values differ/);
      // Autograd gives half the true gradient; the worst element is the largest |x|.
      const m = /worst at \[2\]: actual (\S+), expected (\S+),/.exec(message);
      assert.ok(m, message);
      assertClose(Number(m[1]) / Number(m[2]), 0.5, { rtol: 1e-6 });
    });
  });

  void test('passes a right VJP and reports the error it measured', () => {
    E.tidy(() => {
      const x = E.tensor([0.5, -1.25, 2], [3], { dtype: 'float64' });
      const r = gradcheck((t) => E.square(t), [x]);
      assert.equal(r.checked, 3);
      assert.ok(r.maxAbsError < 1e-8, `error ${r.maxAbsError}`);
    });
  });

  void test('checks an input that does not reach the output as a zero gradient', () => {
    E.tidy(() => {
      const a = E.tensor([1, 2], [2], { dtype: 'float64' });
      const b = E.tensor([3, 4], [2], { dtype: 'float64' });
      assert.equal(gradcheck((p) => E.exp(p), [a, b]).checked, 4);
      // Detaching cuts the path: autograd says 0, differences say e^a.
      assert.throws(() => gradcheck((p) => E.exp(p.detach()), [a]), /gradient of input 0/);
    });
  });
});

void describe('assertClose', () => {
  void test('accepts values within atol + rtol·|expected|', () => {
    assertClose([1, 2.0000001, NaN, -Infinity], [1, 2, NaN, -Infinity], { rtol: 1e-7 });
    E.tidy(() => assertClose(E.tensor([[1, 2]]), E.tensor([[1, 2]])));
  });

  void test('names the worst index, the values and the error', () => {
    assert.throws(
      () => assertClose([1, 2, 3, 4], [1, 2.5, 3, 4.1], { atol: 0.05, rtol: 0 }, 'vals'),
      /vals: 2 of 4 values differ; worst at \[1\]: actual 2, expected 2\.5, \|error\| 0\.5/,
    );
    E.tidy(() => {
      const a = E.tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      const b = E.tensor([
        [1, 2, 3],
        [4, 5, 7],
      ]);
      assert.throws(() => assertClose(a, b), /worst at \[1, 2\]: actual 6, expected 7/);
      assert.throws(
        () => assertClose(a, E.reshape(b, [3, 2])),
        /shape \[2, 3\], expected \[3, 2\]/,
      );
    });
    assert.throws(() => assertClose([NaN], [1]), /worst at \[0\]: actual NaN/);
    assert.throws(() => assertClose([1, 2], [1]), /2 values, expected 1/);
  });
});
