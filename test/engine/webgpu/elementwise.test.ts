/**
 * WebGPU element-wise kernels against the CPU reference: fill, cast, every unary and binary op
 * (float32 and int32), broadcasting, where, and the Philox random streams.
 *
 * Tolerances, in float32 ulps of the CPU value (which is the exact result rounded once):
 *  - add, sub, mul, comparisons, max/min, neg, abs, sign, square, floor, fill, cast, where:
 *    exact (IEEE single operations are correctly rounded; f64-then-round gives the same value).
 *  - div, sqrt, rsqrt, reciprocal: 3 ulp (WGSL allows 2.5 ulp for division and sqrt).
 *  - exp, log, sin, cos, tanh, sigmoid, erf, silu: 4 ulp (math.wgsl.ts measures ≤ 3 on lavapipe;
 *    one extra for drivers that contract into FMAs differently).
 *  - gelu: 8 ulp + 1e-15 absolute. Past |x| ≈ 1.8 the tail e^{-x²/2}·g(x/√2) takes two exp,
 *    a division and the rounding of x/√2 (measured ≤ 6 ulp). The absolute term: the CPU reference
 *    computes 1 + erf(x/√2) in f64 and so returns 0 below x ≈ −8, where the true value (which
 *    the GPU keeps) is ~1e-16.
 *  - pow: 8 ulp for integer exponents (repeated squaring); otherwise e^{b ln a}, whose relative
 *    error is about (|b ln a| + 2) ulp since the rounding of b·ln a is amplified by its
 *    magnitude: 40 ulp on the random inputs here (a in [0, 4), b in [−4, 4), |b ln a| < 30).
 *  - uniform random: bit-exact; normal random: 4 ulp + 1e-7 absolute (the log near u1 = 1 and
 *    the quarter-turn reduction keep relative accuracy; the absolute term covers cos/sin zeros).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { BinaryOp, UnaryOp } from '../../../src/engine/backend.js';
import { broadcastShapes, broadcastStrides, sizeOf } from '../../../src/engine/shape.js';
import type { Tolerance } from '../testing.js';
import { assertNear, both, cpu, randArray, randInts, setupGpu } from './setup.js';

const gpu = await setupGpu();
const skip = gpu === null;

const SIZES = [0, 1, 3, 7, 64, 257, 1031];

const unaryTol: Record<UnaryOp, Tolerance> = {
  neg: {},
  abs: {},
  sign: {},
  square: {},
  floor: {},
  sqrt: { ulps: 3 },
  rsqrt: { ulps: 3 },
  reciprocal: { ulps: 3 },
  exp: { ulps: 4 },
  log: { ulps: 4 },
  sin: { ulps: 4 },
  cos: { ulps: 4 },
  tanh: { ulps: 4 },
  sigmoid: { ulps: 4, atol: 1e-44 },
  erf: { ulps: 4 },
  silu: { ulps: 4, atol: 1e-44 },
  gelu: { ulps: 8, atol: 1e-15 },
};

/** Input range per op: the domain where the op is defined and finite. */
function unaryInput(op: UnaryOp, n: number, seed: number): Float32Array {
  switch (op) {
    case 'log':
    case 'sqrt':
    case 'rsqrt':
      return randArray(n, seed, 1e-3, 50);
    case 'exp':
      return randArray(n, seed, -80, 80);
    case 'sin':
    case 'cos':
      return randArray(n, seed, -2000, 2000);
    case 'reciprocal':
      return randArray(n, seed, 0.01, 10).map((v, i) => (i % 2 === 0 ? v : -v));
    case 'neg':
    case 'abs':
    case 'sign':
    case 'square':
    case 'floor':
    case 'tanh':
    case 'sigmoid':
    case 'erf':
    case 'silu':
    case 'gelu':
      return randArray(n, seed, -12, 12);
  }
}

void describe('webgpu element-wise', { skip }, () => {
  void test('fill float32 and int32, exact bits', async () => {
    for (const v of [0, -0, 1.5, -3.25e-30, 1e-40, 3.4e38, NaN, Infinity]) {
      const s = gpu!.fill(5, v, 'float32');
      const got = await gpu!.read(s);
      const want = new Float32Array(5).fill(v);
      assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `fill ${v}`);
      gpu!.free(s);
    }
    const s = gpu!.fill(1031, -7.9, 'int32');
    assert.deepEqual(await gpu!.read(s), new Int32Array(1031).fill(-7.9));
    gpu!.free(s);
    const empty = gpu!.fill(0, 1, 'float32');
    assert.equal((await gpu!.read(empty)).length, 0);
    gpu!.free(empty);
  });

  void test('cast float32 <-> int32 (truncation, NaN to 0)', async () => {
    const x = randArray(1031, 1, -1e6, 1e6);
    x.set([0.5, -0.5, 1.99, -1.99, NaN, 2.5, -2.5]);
    const a = await both(gpu!, [x], (b, [s]) => b.cast(s!, 'int32'));
    assertNear(a.g, a.c, {}, 'f32->i32');
    const ints = randInts(1031, 2, -(2 ** 30), 2 ** 30);
    const b = await both(gpu!, [ints], (bk, [s]) => bk.cast(s!, 'float32'));
    assertNear(b.g, b.c, { ulps: 0.5 }, 'i32->f32');
  });

  for (const op of Object.keys(unaryTol) as UnaryOp[]) {
    void test(`unary ${op} float32`, async () => {
      for (const n of SIZES) {
        const { g, c } = await both(gpu!, [unaryInput(op, n, n + 11)], (b, [x]) => b.unary(op, x!));
        assertNear(g, c, unaryTol[op], `${op} n=${n}`);
      }
    });
  }

  void test('unary special values follow the CPU (NaN, ±inf, ±0)', async () => {
    const x = new Float32Array([NaN, Infinity, -Infinity, 0, -0, 1e-30, -1e-30, 100, -100]);
    for (const op of Object.keys(unaryTol) as UnaryOp[]) {
      const { g, c } = await both(gpu!, [x], (b, [s]) => b.unary(op, s!));
      assertNear(g, c, { ...unaryTol[op], atol: 1e-30 }, `${op} specials`);
    }
  });

  void test('unary int32', async () => {
    const x = randInts(257, 3, -20, 20);
    for (const op of ['neg', 'abs', 'sign', 'square', 'floor', 'exp', 'sqrt'] as UnaryOp[]) {
      const input = op === 'sqrt' ? x.map(Math.abs) : op === 'exp' ? x.map((v) => v % 8) : x;
      const { g, c } = await both(gpu!, [input], (b, [s]) => b.unary(op, s!));
      assert.deepEqual(g, c, `int32 ${op}`);
    }
  });

  const SHAPES: [number[], number[]][] = [
    [[7], [7]],
    [[1031], [1031]],
    [[3, 5], [5]],
    [
      [3, 1],
      [1, 4],
    ],
    [
      [2, 3, 4],
      [3, 1],
    ],
    [[1], [13]],
    [[], [5]],
    [[5], []],
    [[], []],
    [[1, 1, 7], [7]],
    [[17, 13], [13]],
    [
      [31, 1],
      [1, 37],
    ],
    [
      [2, 1, 3, 1, 5],
      [4, 1, 6, 1],
    ],
    [[0, 3], [3]],
  ];

  const binaryTol: Record<BinaryOp, Tolerance> = {
    add: {},
    sub: {},
    mul: {},
    div: { ulps: 3 },
    pow: {},
    maximum: {},
    minimum: {},
    lt: {},
    le: {},
    gt: {},
    ge: {},
    eq: {},
    ne: {},
  };

  for (const op of Object.keys(binaryTol) as BinaryOp[]) {
    void test(`binary ${op} float32 with broadcasting`, async () => {
      for (const [sa, sb] of SHAPES) {
        const outShape = broadcastShapes(sa, sb);
        const spec = {
          outShape,
          strides: [broadcastStrides(sa, outShape), broadcastStrides(sb, outShape)],
        };
        let a = randArray(sizeOf(sa), 5, -4, 4);
        let b = randArray(sizeOf(sb), 6, -4, 4);
        if (op === 'div') b = b.map((v) => (v < 0 ? v - 0.5 : v + 0.5));
        if (op === 'pow') a = a.map(Math.abs);
        if (['eq', 'ne', 'le', 'ge', 'maximum', 'minimum'].includes(op) && b.length > 0) {
          a = a.map((v, i) => (i % 3 === 0 ? b[i % b.length]! : v)); // some ties
        }
        const tol: Tolerance = op === 'pow' ? { ulps: 40, atol: 1e-37 } : binaryTol[op];
        const { g, c } = await both(gpu!, [a, b], (bk, [x, y]) => bk.binary(op, x!, y!, spec));
        assertNear(g, c, tol, `${op} ${JSON.stringify([sa, sb])}`);
      }
    });
  }

  void test('pow: integer exponents of negative bases, zero and special cases', async () => {
    const a = new Float32Array([-2, -2, -1.5, 0, 0, 3, -3, 2, NaN, 1, -8]);
    const b = new Float32Array([3, 2, -3, 2, -2, 0, 0.5, 10, 0, NaN, 1 / 3]);
    const spec = { outShape: [a.length], strides: [[1], [1]] };
    const { g, c } = await both(gpu!, [a, b], (bk, [x, y]) => bk.binary('pow', x!, y!, spec));
    assertNear(g, c, { ulps: 8 }, 'pow specials');
  });

  void test('binary NaN propagation in maximum/minimum', async () => {
    const a = new Float32Array([NaN, 1, NaN, 2]);
    const b = new Float32Array([1, NaN, NaN, 3]);
    const spec = { outShape: [4], strides: [[1], [1]] };
    for (const op of ['maximum', 'minimum'] as const) {
      const { g, c } = await both(gpu!, [a, b], (bk, [x, y]) => bk.binary(op, x!, y!, spec));
      assertNear(g, c, {}, op);
    }
  });

  void test('binary int32 (wrapping, truncating division, x/0 = 0)', async () => {
    const a = randInts(257, 7, -1000, 1000);
    const b = randInts(257, 8, -9, 9);
    b[0] = 0;
    a[1] = -(2 ** 31);
    b[1] = -1;
    const spec = { outShape: [257], strides: [[1], [1]] };
    for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'lt', 'eq'] as const) {
      const { g, c } = await both(gpu!, [a, b], (bk, [x, y]) => bk.binary(op, x!, y!, spec));
      assert.deepEqual(g, c, `int32 ${op}`);
    }
    const small = randInts(64, 9, -5, 6);
    const exps = randInts(64, 10, 0, 5);
    const s2 = { outShape: [64], strides: [[1], [1]] };
    const p = await both(gpu!, [small, exps], (bk, [x, y]) => bk.binary('pow', x!, y!, s2));
    assert.deepEqual(p.g, p.c, 'int32 pow');
  });

  void test('where with float and int conditions, broadcast', async () => {
    const outShape = [4, 5, 6];
    const cond = randArray(5 * 1, 11, -1, 1).map((v) => (v > 0 ? 1 : 0));
    const a = randArray(6, 12);
    const b = randArray(4 * 5 * 6, 13);
    const spec = {
      outShape,
      strides: [
        broadcastStrides([5, 1], outShape),
        broadcastStrides([6], outShape),
        broadcastStrides(outShape, outShape),
      ],
    };
    const r = await both(gpu!, [cond, a, b], (bk, [c, x, y]) => bk.where(c!, x!, y!, spec));
    assertNear(r.g, r.c, {}, 'where f32 cond');
    const icond = Int32Array.from(cond);
    const r2 = await both(gpu!, [icond, a, b], (bk, [c, x, y]) => bk.where(c!, x!, y!, spec));
    assertNear(r2.g, r2.c, {}, 'where i32 cond');
  });

  void test('float64 is refused with a clear error', () => {
    assert.equal(gpu!.supportsDType('float64'), false);
    assert.equal(gpu!.supportsDType('float32'), true);
    assert.throws(() => gpu!.fromArray(new Float64Array(3)), /float64/);
    assert.throws(() => gpu!.fill(3, 1, 'float64'), /float64/);
  });

  void test('random uniform: bit-exact with the CPU stream', async () => {
    const cases: [number, number, number][] = [
      [0, 0, 1],
      [1, 0, 10007],
      [42, 3, 4],
      [2 ** 40 + 5, 2 ** 32 - 3, 4001], // seed above 2^32; counter carries into the high word
      [7, 2 ** 52, 9],
    ];
    for (const [seed, offset, n] of cases) {
      const g = await gpu!.read(gpu!.random('uniform', n, 'float32', seed, offset));
      const c = await cpu.read(cpu.random('uniform', n, 'float32', seed, offset));
      assert.deepEqual(g, c, `uniform seed ${seed} offset ${offset} n ${n}`);
      assert.ok(
        g.every((v) => v > 0 && v < 1),
        'uniforms lie in the open interval (0, 1)',
      );
    }
  });

  void test('random normal: within a few ulps of the CPU stream', async () => {
    for (const [seed, offset, n] of [
      [3, 0, 100003],
      [2 ** 33 + 1, 2 ** 32 - 1, 1001],
      [9, 5, 3],
    ] as [number, number, number][]) {
      const g = await gpu!.read(gpu!.random('normal', n, 'float32', seed, offset));
      const c = await cpu.read(cpu.random('normal', n, 'float32', seed, offset));
      assertNear(g, c, { ulps: 4, atol: 1e-7 }, `normal seed ${seed}`);
    }
  });

  void test('random validates seed and offset like the CPU', () => {
    assert.throws(() => gpu!.random('uniform', 4, 'float32', -1, 0), /seed/);
    assert.throws(() => gpu!.random('uniform', 8, 'float32', 0, 2 ** 53 - 1), /2\^53/);
    assert.throws(() => gpu!.random('normal', 4, 'int32', 0, 0), /float32/);
  });
});
