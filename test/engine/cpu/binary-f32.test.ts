/**
 * The CPU backend's float32 add/sub/mul/div through the module's `binary` kernel (binary-f32.ts)
 * against the reference loops (elementwise.ts' binaryKernel), bit for bit, over the layouts it
 * takes (whole operands, scalars, a float a row, one row for all rows, either side), chunk
 * boundaries and lengths that are not a multiple of four; and the layouts it leaves alone.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { BinaryOp } from '../../../src/engine/backend.js';
import { binaryF32Simd } from '../../../src/engine/backends/cpu/binary-f32.js';
import { binaryKernel } from '../../../src/engine/backends/cpu/elementwise.js';
import { simdRuntime } from '../../../src/engine/backends/cpu/simd-gemm.js';
import { broadcastShapes, broadcastStrides, sizeOf } from '../../../src/engine/shape.js';

/** Values with signs, magnitudes over many binades, zeros, infinities and NaN. */
function values(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const u = s / 2 ** 31;
    v[i] = (u - 0.5) * 2 ** ((s % 40) - 20);
  }
  const specials = [0, -0, Infinity, -Infinity, NaN, 1e-40, 3.4e38];
  specials.forEach((x, i) => {
    if (i * 7 < n) v[i * 7] = x;
  });
  return v;
}

function spec(a: readonly number[], b: readonly number[]) {
  const outShape = broadcastShapes(a, b, 'test');
  return { outShape, strides: [broadcastStrides(a, outShape), broadcastStrides(b, outShape)] };
}

const OPS: BinaryOp[] = ['add', 'sub', 'mul', 'div'];

/** [a's shape, b's shape] pairs the kernel takes. */
const TAKEN: [number[], number[]][] = [
  [[70001], [70001]], // whole, over two chunks, odd length
  [
    [3, 5, 7, 9],
    [3, 5, 7, 9],
  ],
  [[1], [40003]], // scalar left
  [[40003], [1]], // scalar right
  [[], [13]], // 0-d scalar
  [
    [3, 5, 7, 9],
    [3, 5, 1, 1],
  ], // a float a row (time embedding on [B, C, H, W])
  [
    [3, 5, 1, 1],
    [3, 5, 7, 9],
  ], // the same on the left
  [[1000, 37], [37]], // one row for all (a bias), many rows a chunk
  [[37], [1000, 37]],
  [
    [2, 40001],
    [2, 1],
  ], // rows longer than a chunk
  [[3, 40001], [40001]],
  [
    [64, 3],
    [64, 1],
  ], // short rows
];

void describe('cpu float32 binary kernel (WebAssembly SIMD)', () => {
  const rt = simdRuntime();

  void test('the same bits as the reference loops for every layout it takes', (t) => {
    if (rt === null) return t.skip('no WebAssembly SIMD runtime');
    TAKEN.forEach(([sa, sb], k) => {
      const a = values(sizeOf(sa), 2 * k + 1);
      const b = values(sizeOf(sb), 2 * k + 2);
      const sp = spec(sa, sb);
      for (const op of OPS) {
        const want = new Float32Array(sizeOf(sp.outShape));
        binaryKernel(op, a, b, sp, want);
        const got = new Float32Array(want.length).fill(12345);
        assert.equal(
          binaryF32Simd(rt, op, a, b, sp, got),
          true,
          `${op} [${sa.join()}] [${sb.join()}] taken`,
        );
        const bits = (x: Float32Array) => new Uint32Array(x.buffer);
        // NaN's payload may differ; every other value must be the same bits.
        for (let i = 0; i < want.length; i++) {
          if (Number.isNaN(want[i]!)) assert.ok(Number.isNaN(got[i]!), `${op} [${i}] NaN`);
          else
            assert.equal(
              bits(got)[i],
              bits(want)[i],
              `${op} [${sa.join()}] [${sb.join()}] at ${i}: ${got[i]}`,
            );
        }
      }
    });
  });

  void test('other ops and layouts are left to the reference loops', (t) => {
    if (rt === null) return t.skip('no WebAssembly SIMD runtime');
    const cases: [BinaryOp, number[], number[]][] = [
      ['pow', [8], [8]],
      ['maximum', [8], [8]],
      ['add', [4, 1], [1, 5]], // both broadcast
      ['add', [2, 3, 4], [3, 1]], // a float a row in a rank-3 pattern
    ];
    for (const [op, sa, sb] of cases) {
      const sp = spec(sa, sb);
      const out = new Float32Array(sizeOf(sp.outShape));
      const a = values(sizeOf(sa), 1);
      const b = values(sizeOf(sb), 2);
      assert.equal(
        binaryF32Simd(rt, op, a, b, sp, out),
        false,
        `${op} [${sa.join()}] [${sb.join()}]`,
      );
      assert.ok(
        out.every((x) => x === 0),
        'nothing written',
      );
    }
  });
});
