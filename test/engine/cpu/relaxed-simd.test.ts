/**
 * The two builds of the float32 gemm: plain (c + a·b rounded twice) and fused multiply-add
 * (f32x4.relaxed_madd, relaxed SIMD). Each against the float64 product within the K-term
 * accumulation bound, and bit for bit against a JavaScript model of its own arithmetic (k in
 * ascending order from 0, each step rounded once or twice), on shapes whose M, N and K are not
 * multiples of the 4×8 tile. The fused build's conv paths and thread split are checked by running
 * simd.test.ts again under SUMI_CPU_FMA=1. Also the selection: SUMI_CPU_FMA=0 forces the plain
 * build, 1 the fused one, unset takes it only where the runtime already has relaxed SIMD, and an
 * unavailable relaxed SIMD falls back to plain.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  chooseGemmKernel,
  type FmaMode,
  parseFmaMode,
  type RelaxedSimdSupport,
  runtimeRelaxedSimd,
} from '../../../src/engine/backends/cpu/relaxed-simd.js';
import { gemmF32, SimdRuntime } from '../../../src/engine/backends/cpu/simd-gemm.js';
import type { GemmKernel } from '../../../src/engine/backends/cpu/wasm/kernel.js';
import { assertNear, randArray } from '../webgpu/setup.js';

if (!runtimeRelaxedSimd.available()) runtimeRelaxedSimd.enable();
const runtimes: Record<GemmKernel, SimdRuntime> = {
  plain: new SimdRuntime({ kernel: 'plain', threads: false }),
  fma: new SimdRuntime({ kernel: 'fma', threads: false }),
};

const word = new Float32Array(1);
const bits = new Uint32Array(word.buffer);

/** The float32 after x (x a float32, not NaN or +∞). */
function nextUp(x: number): number {
  if (x === 0) return 2 ** -149;
  word[0] = x;
  bits[0] = x > 0 ? bits[0]! + 1 : bits[0]! - 1;
  return word[0];
}

/**
 * fma(a, b, c) rounded once to float32, exactly: a·b is exact in float64 (two 24-bit
 * significands), TwoSum gives a·b + c = s + err exactly, and rounding s to float32 can only go
 * the wrong way when s is halfway between two floats, where err's sign decides.
 */
function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const t = s - p;
  const err = p - (s - t) + (c - t);
  const r = Math.fround(s);
  if (err === 0 || r === s) return r;
  const other = s > r ? nextUp(r) : -nextUp(-r);
  if (s - r !== other - s) return r;
  return err > 0 === other > r ? other : r;
}

interface Case {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
}

/** op(A)[i, p] and op(B)[p, j] of a case, row-major storage. */
const opA = (g: Case, a: Float32Array, i: number, p: number): number =>
  g.transA ? a[p * g.m + i]! : a[i * g.k + p]!;
const opB = (g: Case, b: Float32Array, p: number, j: number): number =>
  g.transB ? b[j * g.k + p]! : b[p * g.n + j]!;

/** The kernel's arithmetic in JavaScript: C += Σ_p (k ascending from 0), then + C₀ if accumulating. */
function model(g: Case, a: Float32Array, b: Float32Array, c0: Float32Array, fused: boolean) {
  const out = new Float32Array(g.m * g.n);
  for (let i = 0; i < g.m; i++) {
    for (let j = 0; j < g.n; j++) {
      let acc = 0;
      for (let p = 0; p < g.k; p++) {
        const x = opA(g, a, i, p);
        const y = opB(g, b, p, j);
        acc = fused ? fmaF32(x, y, acc) : Math.fround(acc + Math.fround(x * y));
      }
      out[i * g.n + j] = g.accumulate ? Math.fround(c0[i * g.n + j]! + acc) : acc;
    }
  }
  return out;
}

function run(kernel: GemmKernel, g: Case, a: Float32Array, b: Float32Array, c0: Float32Array) {
  const c = Float32Array.from(c0);
  gemmF32(runtimes[kernel], g, a, 0, b, 0, c, 0);
  return c;
}

const sameBits = (x: Float32Array, y: Float32Array): boolean =>
  x.length === y.length &&
  new Uint32Array(x.buffer).every((v, i) => v === new Uint32Array(y.buffer)[i]);

/** Whether this runtime's relaxed_madd rounds once: 1·(1 − 2⁻¹¹ …) chosen so that it shows. */
function fmaFuses(): boolean {
  // C = (−(1 + 2⁻¹¹))·1 + (1 + 2⁻¹²)²: the product rounds to 1 + 2⁻¹¹ (the 2⁻²⁴ is a tie to
  // even), so two roundings give 0 and one gives 2⁻²⁴.
  const g: Case = { m: 1, n: 1, k: 2, transA: false, transB: false, accumulate: false };
  const u = 1 + 2 ** -12;
  const c = run(
    'fma',
    g,
    Float32Array.of(-(1 + 2 ** -11), u),
    Float32Array.of(1, u),
    new Float32Array(1),
  );
  return c[0] === 2 ** -24;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 2],
  [4, 8, 16],
  [5, 9, 17],
  [7, 15, 64],
  [37, 29, 53],
  [13, 31, 200],
  [64, 72, 257],
];

void describe('float32 gemm: plain and fused multiply-add builds', () => {
  void test('relaxed SIMD can be turned on in this Node, and fuses where the CPU has FMA', () => {
    assert.ok(runtimeRelaxedSimd.available(), 'relaxed SIMD did not validate after enable()');
    const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
    if (/^flags\s*:.*\bfma\b/m.test(cpuinfo)) {
      assert.ok(fmaFuses(), 'the CPU has FMA3 but relaxed_madd rounded twice');
    }
  });

  for (const kernel of ['plain', 'fma'] as const) {
    void test(`${kernel}: odd shapes and every transpose case, against float64 and its own model`, () => {
      const fused = kernel === 'fma' && fmaFuses();
      let seed = kernel === 'fma' ? 100 : 1;
      for (const [m, n, k] of SHAPES) {
        for (const [transA, transB, accumulate] of [
          [false, false, false],
          [true, false, false],
          [false, true, true],
          [true, true, false],
        ] as const) {
          const g: Case = { m, n, k, transA, transB, accumulate };
          const what = `${kernel} ${JSON.stringify(g)}`;
          const a = randArray(m * k, seed++);
          const b = randArray(k * n, seed++);
          const c0 = randArray(m * n, seed++);
          const c = run(kernel, g, a, b, c0);
          assert.ok(sameBits(c, model(g, a, b, c0, fused)), `${what}: not its model's bits`);
          // |C − C_f64| ≤ K·2⁻²⁴·Σ|a b| + 2⁻²⁴·|C_f64| (+ the final add's rounding of C₀ + Σ).
          const ref = new Float64Array(m * n);
          const abs = new Float64Array(m * n);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              let s = accumulate ? c0[i * n + j]! : 0;
              let t = Math.abs(s);
              for (let p = 0; p < k; p++) {
                s += opA(g, a, i, p) * opB(g, b, p, j);
                t += Math.abs(opA(g, a, i, p) * opB(g, b, p, j));
              }
              ref[i * n + j] = s;
              abs[i * n + j] = t;
            }
          }
          assertNear(
            Float64Array.from(c),
            ref,
            { bound: (i) => (k + 1) * 2 ** -24 * abs[i]! + 2 ** -24 * Math.abs(ref[i]!) },
            what,
          );
        }
      }
    });
  }

  void test('the two builds differ where the fused one rounds once, and agree at k ≤ 1', () => {
    const g: Case = { m: 13, n: 31, k: 200, transA: false, transB: false, accumulate: false };
    const a = randArray(13 * 200, 7);
    const b = randArray(200 * 31, 8);
    const zero = new Float32Array(13 * 31);
    assert.equal(sameBits(run('plain', g, a, b, zero), run('fma', g, a, b, zero)), !fmaFuses());
    const g1 = { ...g, k: 1 };
    assert.ok(sameBits(run('plain', g1, a, b, zero), run('fma', g1, a, b, zero)), 'k = 1');
    const g0 = { ...g, k: 0 };
    assert.ok(
      run('fma', g0, a, b, zero).every((v) => v === 0),
      'k = 0 gives zeros',
    );
  });

  void test('a build gives the same bits before and after V8 optimises it', () => {
    const g: Case = { m: 37, n: 29, k: 53, transA: false, transB: true, accumulate: false };
    const a = randArray(37 * 53, 11);
    const b = randArray(29 * 53, 12);
    const zero = new Float32Array(37 * 29);
    for (const kernel of ['plain', 'fma'] as const) {
      const fresh = new SimdRuntime({ kernel, threads: false });
      const first = new Float32Array(37 * 29);
      gemmF32(fresh, g, a, 0, b, 0, first, 0);
      const big = { ...g, m: 128, n: 128, k: 128 };
      const x = randArray(128 * 128, 13);
      for (let i = 0; i < 40; i++) gemmF32(fresh, big, x, 0, x, 0, new Float32Array(128 * 128), 0);
      const later = new Float32Array(37 * 29);
      gemmF32(fresh, g, a, 0, b, 0, later, 0);
      assert.ok(sameBits(first, later), `${kernel}: first call vs after 40 large calls`);
      assert.ok(sameBits(first, run(kernel, g, a, b, zero)), `${kernel}: two runtimes`);
    }
  });

  void test('selection: 0 forces plain, 1 turns relaxed SIMD on, unavailable falls back', () => {
    const support = (availableAfter: number): RelaxedSimdSupport & { calls: string[] } => {
      const calls: string[] = [];
      let enabled = false;
      return {
        calls,
        available() {
          calls.push('available');
          return enabled ? availableAfter >= 1 : availableAfter >= 2;
        },
        enable() {
          calls.push('enable');
          enabled = true;
        },
      };
    };
    // availableAfter: 2 already there, 1 after enable(), 0 never.
    const cases: [FmaMode, number, GemmKernel, string[]][] = [
      ['off', 2, 'plain', []],
      ['auto', 2, 'fma', ['available']],
      ['auto', 1, 'plain', ['available']],
      ['auto', 0, 'plain', ['available']],
      ['on', 2, 'fma', ['available']],
      ['on', 1, 'fma', ['available', 'enable', 'available']],
      ['on', 0, 'plain', ['available', 'enable', 'available']],
    ];
    for (const [mode, availability, kernel, calls] of cases) {
      const s = support(availability);
      assert.equal(chooseGemmKernel(mode, s), kernel, `${mode}, availability ${availability}`);
      assert.deepEqual(s.calls, calls, `${mode}, availability ${availability}: calls`);
    }
    assert.equal(parseFmaMode(undefined), 'auto');
    assert.equal(parseFmaMode(''), 'auto');
    assert.equal(parseFmaMode('0'), 'off');
    assert.equal(parseFmaMode('1'), 'on');
    assert.throws(
      () => parseFmaMode('yes'),
      /^Error: SUMI_CPU_FMA must be 0 .* or 1 .*, not 'yes'$/,
    );
  });

  void test('selection in a process: SUMI_CPU_FMA and the V8 flag', () => {
    const script = fileURLToPath(new URL('./gemm-kernel-kind.ts', import.meta.url));
    const child = (fma: string | undefined, flags: string[] = []) => {
      const env: Record<string, string | undefined> = { ...process.env, SUMI_CPU_THREADS: '1' };
      if (fma === undefined) delete env.SUMI_CPU_FMA;
      else env.SUMI_CPU_FMA = fma;
      return spawnSync(process.execPath, [...flags, '--import', 'tsx', script], {
        env,
        encoding: 'utf8',
      });
    };
    const line = (fma: string | undefined, flags: string[] = []): string => {
      const r = child(fma, flags);
      assert.equal(r.status, 0, `SUMI_CPU_FMA=${fma} ${flags.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const flag = ['--experimental-wasm-relaxed-simd'];
    // Unset: fused only where relaxed SIMD was already there (no flag set by the backend).
    const auto = line(undefined);
    assert.ok(auto === 'no-relaxed plain' || auto === 'relaxed fma', `auto: ${auto}`);
    assert.equal(line(undefined, flag), 'relaxed fma');
    assert.equal(line('0', flag), 'relaxed plain');
    assert.match(line('1'), / fma$/);
    const bad = child('2');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /SUMI_CPU_FMA must be 0 .* or 1 .*, not '2'/);
  });

  void test('convolutions, matmuls and the thread split with SUMI_CPU_FMA=1 (simd.test.ts again)', () => {
    const suite = fileURLToPath(new URL('./simd.test.ts', import.meta.url));
    // A fresh test run, reporting in TAP (NODE_TEST_CONTEXT would make it report to this one).
    const env: Record<string, string | undefined> = { ...process.env, SUMI_CPU_FMA: '1' };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=tap', suite],
      { env, encoding: 'utf8' },
    );
    assert.equal(
      r.status,
      0,
      `simd.test.ts under SUMI_CPU_FMA=1 failed:\n${r.stdout.slice(-4000)}`,
    );
    assert.match(r.stdout, /^# fail 0$/m);
    assert.match(r.stdout, /^# pass [1-9]\d*$/m);
  });
});
