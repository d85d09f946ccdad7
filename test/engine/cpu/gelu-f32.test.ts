/**
 * The CPU backend's float32 GELU (gelu-f32.ts: Φ from a one-exponential erfc fit) against the
 * float64 reference (erf by its series, fused.ts' geluBackwardKernel), forward and backward, over
 * both tails and the special values; and the op's gradient through the fused backward.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  geluBackwardF32,
  geluBackwardF32Simd,
  geluF32,
  geluF32Simd,
} from '../../../src/engine/backends/cpu/gelu-f32.js';
import { simdRuntime } from '../../../src/engine/backends/cpu/simd-gemm.js';
import { geluBackwardKernel } from '../../../src/engine/backends/cpu/fused.js';
import { gelu as geluRef } from '../../../src/engine/backends/cpu/math.js';
import * as E from '../../../src/engine/index.js';

/** Values over [−12, 12], denser near 0, plus the ends of float32 and the special values. */
function inputs(): Float32Array {
  const v: number[] = [0, -0, 1e-30, -1e-30, 3.4e38, -3.4e38, Infinity, -Infinity, NaN];
  for (let i = -1200; i <= 1200; i++) v.push(i / 100, (i / 1200) ** 3 * 12 + 1e-3);
  return Float32Array.from(v);
}

/** |a − e| ≤ rtol · scale, with NaN only where the reference is NaN. */
function check(a: Float32Array, e: Float64Array, scale: Float64Array, rtol: number, what: string) {
  for (let i = 0; i < a.length; i++) {
    const ai = a[i]!;
    const ei = e[i]!;
    if (Number.isNaN(ei)) {
      assert.ok(Number.isNaN(ai), `${what}[${i}]: ${ai}, expected NaN`);
      continue;
    }
    if (!Number.isFinite(ei)) {
      assert.equal(ai, ei, `${what}[${i}]`);
      continue;
    }
    const tol = rtol * scale[i]! + 1e-44;
    assert.ok(Math.abs(ai - ei) <= tol, `${what}[${i}] x=${i}: ${ai} vs ${ei} (tol ${tol})`);
  }
}

/** Φ and x φ cancel near x = −0.75: the backward's error is relative to the terms, not their sum. */
function dgeluScale(x: Float32Array, dy: Float32Array): Float64Array {
  return Float64Array.from(x, (v, i) => {
    const phi = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
    return Math.abs(dy[i]!) * (Math.abs(geluRef(v) / (v === 0 ? 1 : v)) + Math.abs(v * phi));
  });
}

type Forward = (x: Float32Array, y: Float32Array) => void;
type Backward = (x: Float32Array, dy: Float32Array, dx: Float32Array) => void;

const rt = simdRuntime();
const kernels: [string, Forward, Backward][] = [['JavaScript loops', geluF32, geluBackwardF32]];
if (rt !== null) {
  kernels.push([
    'WebAssembly f64 lanes',
    (x, y) => geluF32Simd(rt, x, y),
    (x, dy, dx) => geluBackwardF32Simd(rt, x, dy, dx),
  ]);
}

for (const [name, forward, backward] of kernels) {
  void describe(`cpu float32 GELU (${name})`, () => {
    const x = inputs();

    void test('forward within 3e-7 of x Φ(x) in f64', () => {
      const y = new Float32Array(x.length);
      forward(x, y);
      const e = Float64Array.from(x, (v) => geluRef(v));
      check(y, e, Float64Array.from(e, Math.abs), 3e-7, 'gelu');
      // The tails: x Φ(x) → x above, → 0 from below (not a flush to 0 before float32 must).
      assert.equal(y[x.indexOf(12)], 12);
      const at = x.findIndex((v) => v === -8);
      assert.ok(y[at]! < 0 && y[at]! > -1e-14, `gelu(−8) = ${y[at]}`);
    });

    void test('backward within 3e-7 of dy (Φ + x φ) in f64, and equal to the reference kernel', () => {
      const dy = Float32Array.from(x, (_, i) => ((i % 7) - 3) / 2.5);
      const dx = new Float32Array(x.length);
      backward(x, dy, dx);
      const e = new Float64Array(x.length);
      geluBackwardKernel(Float64Array.from(x), Float64Array.from(dy), e);
      const scale = dgeluScale(x, dy);
      check(dx, e, scale, 3e-7, 'dgelu');
    });

    void test('every length and offset: a tail that is not a multiple of 4, chunks past 65,536', () => {
      for (const n of [1, 3, 5, 8, 13, 65536 + 7]) {
        const xs = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 6);
        const dy = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11));
        const y = new Float32Array(n);
        const dx = new Float32Array(n);
        forward(xs, y);
        backward(xs, dy, dx);
        const e = Float64Array.from(xs, (v) => geluRef(v));
        check(y, e, Float64Array.from(e, Math.abs), 3e-7, `gelu n=${n}`);
        const de = new Float64Array(n);
        geluBackwardKernel(Float64Array.from(xs), Float64Array.from(dy), de);
        check(dx, de, dgeluScale(xs, dy), 3e-7, `dgelu n=${n}`);
      }
    });
  });
}

void describe('cpu float32 GELU op', () => {
  void test('the op takes the fused backward: float32 gradient matches float64', () => {
    const vals = [-6, -2.5, -0.7518, -0.1, 0, 0.3, 1, 4.2];
    const gradOf = (dtype: 'float32' | 'float64'): Float64Array =>
      E.tidy(() => {
        const t = E.tensor(vals, [vals.length], { dtype, requiresGrad: true });
        E.sum(E.gelu(t)).backward();
        return Float64Array.from(t.grad!.dataSync());
      });
    const a = gradOf('float32');
    const b = gradOf('float64');
    for (let i = 0; i < vals.length; i++) {
      assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6, `${vals[i]}: ${a[i]} vs ${b[i]}`);
    }
    // The f64 gradient is dΦ-exact: Φ(x) + x φ(x) at x = 1.
    assert.ok(Math.abs(b[6]! - 1.0833154705876864) < 1e-15, `${b[6]}`);
  });
});
