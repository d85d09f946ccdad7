/**
 * float32 GELU, forward and backward, for Float32Array storages. The reference kernels evaluate
 * erf by its Maclaurin series (~1e-15, tens of ns an element); float32 needs only ~1e-7, which a
 * Chebyshev fit of erfc gives with one exponential:
 *
 *   erfc z ≈ t · exp(−z² + P(t)),  t = 1/(1 + z/2),  z ≥ 0
 *
 * (Press et al., Numerical Recipes §6.2, fractional error < 1.2e-7 for every z ≥ 0). The normal
 * CDF is taken from the side where it is small, so its relative error stays at that level in
 * both tails: Φ(x) = erfc(−x/√2)/2 for x ≤ 0 and 1 − erfc(x/√2)/2 for x > 0.
 * With the WebAssembly module (`simdRuntime()`), the same fit runs in float64 SIMD lanes
 * (`gelu`/`gelu_grad` in wasm/gemm.wat) over chunks copied into the module's memory; the loops
 * below are the fallback. Tested against the f64 reference kernels.
 */
import type { SimdRuntime } from './simd-gemm.js';

const INV_SQRT_2PI = 0.3989422804014327;

/** erfc(z) for z ≥ 0 (z = +∞ gives 0). */
function erfcNonNeg(z: number): number {
  const t = 1 / (1 + 0.5 * z);
  const p =
    -1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t *
                      (0.27886807 +
                        t *
                          (-1.13520398 +
                            t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * Math.exp(-z * z + p);
}

/** Φ(x), the standard normal CDF. */
function normalCdf(x: number): number {
  if (x <= 0) return 0.5 * erfcNonNeg(-x * Math.SQRT1_2);
  return 1 - 0.5 * erfcNonNeg(x * Math.SQRT1_2);
}

/** y = x Φ(x). */
export function geluF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    y[i] = v * normalCdf(v);
  }
}

/** dx = dy · (Φ(x) + x φ(x)),  φ(x) = e^(−x²/2)/√(2π). */
export function geluBackwardF32(x: Float32Array, dy: Float32Array, dx: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    dx[i] = dy[i]! * (normalCdf(v) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
  }
}

/** Floats per chunk copied into the module's memory (two arrays of it for the backward). */
const CHUNK = 1 << 16;
const up4 = (n: number): number => Math.ceil(n / 4) * 4;

/** geluF32 through the module's `gelu` kernel. */
export function geluF32Simd(rt: SimdRuntime, x: Float32Array, y: Float32Array): void {
  for (let o = 0; o < x.length; o += CHUNK) {
    const n = Math.min(CHUNK, x.length - o);
    const len = up4(n);
    const { mem } = rt.view(len);
    mem.set(x.subarray(o, o + n), 0);
    mem.fill(0, n, len);
    rt.gelu(0, len * 4);
    y.set(mem.subarray(0, n), o);
  }
}

/** geluBackwardF32 through the module's `gelu_grad` kernel. */
export function geluBackwardF32Simd(
  rt: SimdRuntime,
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
): void {
  for (let o = 0; o < x.length; o += CHUNK) {
    const n = Math.min(CHUNK, x.length - o);
    const len = up4(n);
    const { mem } = rt.view(2 * len);
    mem.set(x.subarray(o, o + n), 0);
    mem.fill(0, n, len);
    mem.set(dy.subarray(o, o + n), len);
    mem.fill(0, len + n, 2 * len);
    rt.geluGrad(0, len * 4, len * 4);
    dx.set(mem.subarray(len, len + n), o);
  }
}
