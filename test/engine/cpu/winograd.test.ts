/**
 * The CPU backend's Winograd F(2×2, 3×3) convolutions (backends/cpu/winograd.ts), forward, input
 * gradient and weight gradient, against the float64 path of the same float32 inputs, on odd sizes,
 * channel counts that are not multiples of 4, batch 1 and paddings 0, 1 and 2. The bound per
 * element is simd.test.ts's for the direct product, |error| ≤ K·2^-24·Σ|a_k b_k| + 2^-24·|ref|,
 * and the largest error over the largest |ref| stays at float32 level, ≤ 1e-6 (measured up to
 * 4.4e-7 forward and for the input gradient, 6.0e-7 for the weight gradient, whose sums run over
 * the batch's tiles; the direct product's is up to 9e-7 at 64 channels). Also: an image's result
 * is the same bits whatever batch it is in and however the batch is split, and the fused bias is
 * the same bits as a separate add. (That the thread count changes nothing is simd.test.ts's
 * digest, whose stride-1 3×3 case takes Winograd.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Conv2dSpec, Storage } from '../../../src/engine/backend.js';
import { winogradApplies } from '../../../src/engine/backends/cpu/winograd.js';
import { conv2dSpec } from '../../../src/engine/ops/conv.js';
import { assertNear, cpu, randArray } from '../webgpu/setup.js';

type Pass = (x: Storage, w: Storage, s: Conv2dSpec) => Storage;
const forward: Pass = (x, w, s) => cpu.conv2d(x, w, s);
const gradInput: Pass = (dy, w, s) => cpu.conv2dGradInput(dy, w, s);
const gradWeight: Pass = (x, dy, s) => cpu.conv2dGradWeight(x, dy, s);

const CASES: { x: [number, number, number, number]; cOut: number; padding: number }[] = [
  { x: [1, 9, 7, 7], cOut: 10, padding: 1 }, // wOut 7: the narrowest that takes Winograd
  { x: [2, 13, 9, 11], cOut: 11, padding: 1 },
  { x: [1, 8, 5, 16], cOut: 9, padding: 1 },
  { x: [2, 8, 15, 13], cOut: 8, padding: 0 }, // the input gradient's padding is 2
  { x: [2, 10, 10, 9], cOut: 12, padding: 2 }, // the input gradient's padding is 0
  { x: [3, 19, 16, 16], cOut: 24, padding: 1 },
  { x: [2, 64, 14, 14], cOut: 64, padding: 1 },
  { x: [2, 64, 10, 12], cOut: 64, padding: 1 },
  { x: [2, 12, 9, 15], cOut: 10, padding: 1 },
  { x: [1, 16, 11, 17], cOut: 16, padding: 0 },
  { x: [1, 8, 12, 13], cOut: 9, padding: 2 },
];

const specOf = (c: (typeof CASES)[number]): Conv2dSpec =>
  conv2dSpec(c.x, [c.cOut, c.x[1], 3, 3], { padding: c.padding });

function read(s: Storage): Float64Array {
  return Float64Array.from(cpu.readSync!(s));
}

/** The largest |f32 − f64| over the largest |f64|, after checking the per-element bound. */
function checkAgainstF64(pass: Pass, a: Float32Array, w: Float32Array, s: Conv2dSpec, k: number) {
  const run = (x: Float32Array | Float64Array, ww: Float32Array | Float64Array): Float64Array =>
    read(pass(cpu.fromArray(x), cpu.fromArray(ww), s));
  const f32 = run(a, w);
  const f64 = run(Float64Array.from(a), Float64Array.from(w));
  const abs = run(Float64Array.from(a, Math.abs), Float64Array.from(w, Math.abs));
  assertNear(f32, f64, { bound: (i) => k * 2 ** -24 * abs[i]! + 2 ** -24 * Math.abs(f64[i]!) }, '');
  let err = 0;
  let ref = 0;
  for (let i = 0; i < f64.length; i++) {
    err = Math.max(err, Math.abs(f32[i]! - f64[i]!));
    ref = Math.max(ref, Math.abs(f64[i]!));
  }
  return err / ref;
}

void describe('cpu Winograd F(2×2, 3×3) convolutions', () => {
  for (const c of CASES) {
    const s = specOf(c);
    void test(`x ${c.x.join('×')} → ${c.cOut} channels, padding ${c.padding}`, () => {
      assert.ok(winogradApplies(s), 'the case takes Winograd');
      const x = randArray(
        c.x.reduce((p, q) => p * q),
        1,
      );
      const w = randArray(c.cOut * c.x[1] * 9, 2);
      const dy = randArray(s.n * s.cOut * s.hOut * s.wOut, 3);
      const rel: [string, number][] = [
        ['forward', checkAgainstF64(forward, x, w, s, s.cIn * 9)],
        ['input gradient', checkAgainstF64(gradInput, dy, w, s, s.cOut * 9)],
        ['weight gradient', checkAgainstF64(gradWeight, x, dy, s, s.n * s.hOut * s.wOut)],
      ];
      for (const [pass, err] of rel) {
        assert.ok(err <= 1e-6, `${pass}: max error / max |ref| = ${err}`);
      }
    });
  }

  void test('an image gives the same bits in any batch and any split of it', () => {
    for (const pass of [forward, gradInput]) {
      const [n, cIn, h, wd, cOut] = [5, 12, 9, 14, 10];
      const full = conv2dSpec([n, cIn, h, wd], [cOut, cIn, 3, 3], { padding: 1 });
      const inC = pass === forward ? cIn : cOut;
      const outC = pass === forward ? cOut : cIn;
      const inPlane = inC * (pass === forward ? h * wd : full.hOut * full.wOut);
      const outPlane = outC * (pass === forward ? full.hOut * full.wOut : h * wd);
      const input = randArray(n * inPlane, 4);
      const w = cpu.fromArray(randArray(cOut * cIn * 9, 5));
      const whole = cpu.readSync!(pass(cpu.fromArray(input), w, full));
      for (const parts of [
        [1, 1, 1, 1, 1],
        [2, 3],
        [4, 1],
      ]) {
        let img = 0;
        for (const m of parts) {
          const spec = conv2dSpec([m, cIn, h, wd], [cOut, cIn, 3, 3], { padding: 1 });
          assert.ok(winogradApplies(spec), `a batch of ${m} takes Winograd`);
          const part = cpu.fromArray(input.slice(img * inPlane, (img + m) * inPlane));
          const got = cpu.readSync!(pass(part, w, spec));
          const want = whole.subarray(img * outPlane, (img + m) * outPlane);
          const differ = got.findIndex((v, i) => !Object.is(v, want[i]));
          assert.equal(differ, -1, `images ${img}..${img + m - 1}: element ${differ} differs`);
          img += m;
        }
      }
    }
  });

  void test('the fused bias is the same bits as a separate add', () => {
    const s = conv2dSpec([2, 9, 11, 8], [10, 9, 3, 3], { padding: 1 });
    assert.ok(winogradApplies(s), 'the case takes Winograd');
    const x = cpu.fromArray(randArray(2 * 9 * 11 * 8, 6));
    const w = cpu.fromArray(randArray(10 * 9 * 9, 7));
    const bias = randArray(10, 8);
    const fused = cpu.readSync!(cpu.conv2dBias!(x, w, cpu.fromArray(bias), s));
    const plain = cpu.readSync!(cpu.conv2d(x, w, s));
    const P = s.hOut * s.wOut;
    const want = plain.map((v, i) => v + bias[Math.floor(i / P) % s.cOut]!);
    assert.deepEqual(fused, want);
  });

  void test('an empty batch gives an empty output', () => {
    const s = conv2dSpec([0, 8, 8, 8], [8, 8, 3, 3], { padding: 1 });
    assert.ok(winogradApplies(s), 'an empty batch takes Winograd');
    const out = cpu.conv2d(cpu.fromArray(new Float32Array(0)), cpu.fromArray(randArray(576, 9)), s);
    assert.equal(cpu.readSync!(out).length, 0);
  });

  void test('the thread-count digest of simd.test.ts covers Winograd', () => {
    const digestCase = conv2dSpec([3, 16, 12, 12], [32, 16, 3, 3], { padding: 1 });
    assert.ok(winogradApplies(digestCase), 'simd-digest.ts 3×3 stride 1 takes Winograd');
  });
});
