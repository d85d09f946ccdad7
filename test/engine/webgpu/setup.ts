/**
 * Shared setup of the WebGPU test suites: one backend per test process, or a skip (with one line
 * saying why) when this machine has no WebGPU adapter. With CI set, a missing adapter fails
 * instead: CI has lavapipe, so no adapter there means a broken install, not a GPU-less laptop.
 * Also deterministic inputs and an ulp-based comparison.
 */
import type { Backend, Storage } from '../../../src/engine/backend.js';
import {
  createWebGpuBackend,
  type WebGpuBackend,
} from '../../../src/engine/backends/webgpu/index.js';
import type { TypedArray } from '../../../src/engine/dtype.js';
import { cpuBackend } from '../../../src/engine/index.js';
import { assertClose, type Tolerance } from '../testing.js';

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

/**
 * Asserts every element is within tolerance (`assertClose` with nothing allowed beyond what `tol`
 * names); NaN matches NaN, ±inf the same inf.
 */
export function assertNear(
  actual: TypedArray,
  expected: TypedArray,
  tol: Tolerance,
  what: string,
): void {
  assertClose(actual, expected, { rtol: 0, atol: 0, ...tol }, what);
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
