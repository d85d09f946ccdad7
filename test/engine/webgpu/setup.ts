/**
 * Shared setup of the WebGPU test suites: one backend per test process, or a skip (with one line
 * saying why) when this machine has no WebGPU adapter. With CI set, a missing adapter fails
 * instead: CI has lavapipe, so no adapter there means a broken install, not a GPU-less laptop.
 * Also deterministic inputs and an ulp-based comparison.
 */
import assert from 'node:assert/strict';

import type { Backend, Storage } from '../../../src/engine/backend.js';
import {
  createWebGpuBackend,
  type WebGpuBackend,
} from '../../../src/engine/backends/webgpu/index.js';
import type { TypedArray } from '../../../src/engine/dtype.js';
import { cpuBackend } from '../../../src/engine/index.js';

export const cpu: Backend = cpuBackend();

/** The backend, or null (tests skip) when there is no adapter outside CI. */
export async function setupGpu(): Promise<WebGpuBackend | null> {
  const b = await createWebGpuBackend();
  if (b === null) {
    if (process.env.CI !== undefined) {
      throw new Error('webgpu tests: no WebGPU adapter, and CI is set (lavapipe missing?)');
    }
    console.log('webgpu tests skipped: no WebGPU adapter on this machine');
  }
  return b;
}

/** mulberry32 uniforms in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniforms in [lo, hi) as float32. */
export function randArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

export function randInts(n: number, seed: number, lo: number, hi: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => lo + Math.floor((hi - lo) * r()));
}

/** Unit in the last place of v as a float32. */
export function ulp(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a < 1.1754943508222875e-38) return 1.401298464324817e-45;
  if (!Number.isFinite(a)) return Infinity;
  const e = Math.floor(Math.log2(a));
  return 2 ** (e - 23);
}

export interface Tol {
  /** Allowed error in float32 ulps of the reference value. */
  ulps?: number;
  rtol?: number;
  atol?: number;
  /** Per-element absolute bound (overrides the others when given). */
  bound?: (i: number) => number;
}

/** Asserts every element is within tolerance; NaN matches NaN, ±inf the same inf. */
export function assertNear(actual: TypedArray, expected: TypedArray, tol: Tol, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let bad = 0;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const x = actual[i]!;
    const y = expected[i]!;
    let excess: number;
    if (Number.isNaN(y) || Number.isNaN(x)) excess = Number.isNaN(x) === Number.isNaN(y) ? 0 : 1;
    else if (!Number.isFinite(y) || !Number.isFinite(x)) excess = x === y ? 0 : 1;
    else {
      const allowed =
        tol.bound?.(i) ??
        (tol.ulps ?? 0) * ulp(y) + (tol.rtol ?? 0) * Math.abs(y) + (tol.atol ?? 0);
      excess = Math.abs(x - y) - allowed;
    }
    if (excess > 0) {
      bad++;
      if (worst < 0 || excess > worstExcess) [worst, worstExcess] = [i, excess];
    }
  }
  if (bad > 0) {
    assert.fail(
      `${what}: ${bad}/${expected.length} elements out of tolerance; worst [${worst}] ` +
        `actual ${actual[worst]} expected ${expected[worst]} (excess ${worstExcess})`,
    );
  }
}

/** Runs `op` on both backends from the same host inputs and returns both results. */
export async function both(
  gpu: Backend,
  inputs: readonly TypedArray[],
  op: (b: Backend, xs: Storage[]) => Storage,
): Promise<{ g: TypedArray; c: TypedArray }> {
  const gs = inputs.map((a) => gpu.fromArray(a));
  const cs = inputs.map((a) => cpu.fromArray(a.slice()));
  const go = op(gpu, gs);
  const co = op(cpu, cs);
  const g = await gpu.read(go);
  const c = await cpu.read(co);
  for (const s of [...gs, go]) gpu.free(s);
  for (const s of [...cs, co]) cpu.free(s);
  return { g, c };
}
