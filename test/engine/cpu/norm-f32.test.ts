/**
 * The CPU backend's float32 group norm (+ SiLU) kernels (norm-f32.ts: σ from the module's SIMD
 * expf) against the float64 reference kernels of fused.ts, forward and backward, over odd shapes,
 * with and without an affine weight; and σ itself at the ends of its range.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { GroupNormSpec } from '../../../src/engine/backend.js';
import { sigmoid } from '../../../src/engine/backends/cpu/math.js';
import { simdRuntime } from '../../../src/engine/backends/cpu/simd-gemm.js';
import type { TypedArray } from '../../../src/engine/dtype.js';
import { assertNear, cpu, randArray } from '../webgpu/setup.js';
import { maxAbs } from '../testing.js';

/** Within 1e-5 relative, or 4e-6 of the largest value (cancellation in dx). */
function near(actual: TypedArray, expected: TypedArray, what: string): void {
  assertNear(actual, expected, { rtol: 1e-5, atol: 4e-6 * maxAbs(expected) }, what);
}

interface Case {
  n: number;
  channels: number;
  groups: number;
  spatial: number;
  affine: boolean;
  silu: boolean;
}

const CASES: Case[] = [
  { n: 1, channels: 1, groups: 1, spatial: 1, affine: true, silu: true },
  { n: 2, channels: 6, groups: 3, spatial: 7, affine: true, silu: true },
  { n: 3, channels: 8, groups: 8, spatial: 13, affine: false, silu: true },
  { n: 2, channels: 12, groups: 4, spatial: 25, affine: true, silu: false },
  { n: 5, channels: 16, groups: 2, spatial: 49, affine: false, silu: false },
  { n: 4, channels: 32, groups: 8, spatial: 196, affine: true, silu: true },
];

void describe('cpu float32 group norm (+ SiLU)', () => {
  void test('the SIMD runtime is active', () => {
    assert.ok(simdRuntime() !== null, 'WebAssembly SIMD is unavailable');
  });

  for (const c of CASES) {
    void test(`n${c.n} C${c.channels} G${c.groups} S${c.spatial}${c.affine ? ' affine' : ''}${c.silu ? ' silu' : ''}`, () => {
      const size = c.n * c.channels * c.spatial;
      const spec: GroupNormSpec = {
        n: c.n,
        channels: c.channels,
        groups: c.groups,
        spatial: c.spatial,
        eps: 1e-5,
        ...(c.silu ? { activation: 'silu' as const } : {}),
      };
      // Offsets and scales that vary by channel, so that z spans both tails of σ.
      const x = randArray(size, 1, -3, 5);
      const w = randArray(c.channels, 2, -2, 2);
      const b = randArray(c.channels, 3, -1, 1);
      const dy = randArray(size, 4);
      const run = (f: (a: Float32Array) => TypedArray) => {
        const st = (a: Float32Array) => cpu.fromArray(f(a));
        const weight = c.affine ? st(w) : null;
        const bias = c.affine ? st(b) : null;
        const fwd = cpu.groupNorm!(st(x), weight, bias, spec);
        const bwd = cpu.groupNormBackward!(st(x), weight, bias, fwd.mean, fwd.rstd, st(dy), spec);
        const r = (s: typeof fwd.y | null) => (s === null ? null : cpu.readSync!(s));
        return {
          y: r(fwd.y)!,
          mean: r(fwd.mean)!,
          rstd: r(fwd.rstd)!,
          dx: r(bwd.dx)!,
          dw: r(bwd.dweight),
          db: r(bwd.dbias),
        };
      };
      const f32 = run((a) => a);
      const f64 = run((a) => Float64Array.from(a));
      assert.ok(f32.y instanceof Float32Array && f64.y instanceof Float64Array, 'dtypes kept');
      near(f32.mean, f64.mean, 'mean');
      near(f32.rstd, f64.rstd, 'rstd');
      near(f32.y, f64.y, 'y');
      near(f32.dx, f64.dx, 'dx');
      if (c.affine) {
        near(f32.dw!, f64.dw!, 'dweight');
        near(f32.db!, f64.db!, 'dbias');
      }
    });
  }

  void test('σ of the SIMD kernel: within 4e-7 relative from −100 to 100, and at ±∞', () => {
    const rt = simdRuntime()!;
    const zs = [
      ...Array.from({ length: 2001 }, (_, i) => -100 + i * 0.1),
      -1e30,
      1e30,
      -88.5,
      88.5,
      0,
      -0,
      Infinity,
      -Infinity,
    ];
    const len = Math.ceil(zs.length / 8) * 8;
    const { mem } = rt.view(len);
    mem.fill(0, 0, len);
    mem.set(zs, 0);
    rt.sigmoid(0, len * 4);
    for (let i = 0; i < zs.length; i++) {
      const want = sigmoid(Math.fround(zs[i]!));
      const got = mem[i]!;
      // σ(z) for z ≪ 0 is below float32's range of relative accuracy: compare absolutely there.
      assert.ok(
        Math.abs(got - want) <= 4e-7 * want + 1e-38,
        `σ(${zs[i]}) = ${got}, expected ${want}`,
      );
    }
  });
});
