/**
 * float32 group norm (+ SiLU), forward and backward: the definitions of fused.ts, with the
 * statistics still accumulated in f64 but the per-element work in float32 loops specialised for
 * Float32Array, and σ evaluated four lanes at a time by the module's `sigmoid` (Cephes' expf,
 * ~1e-7 relative) instead of Math.exp, which costs ~10 ns an element in V8. Tested against the
 * f64 reference kernels.
 */
import type { GroupNormSpec } from '../../backend.js';
import { normGroups } from './fused.js';
import { type SimdRuntime } from './simd-gemm.js';

/** Floats rounded up to 8: the `sigmoid` kernel takes two vectors at a time. */
const up8 = (n: number): number => Math.ceil(n / 8) * 8;

/** σ over src[0..len) into the module's memory at float offset `at`; returns the view. */
function sigmoidInto(rt: SimdRuntime, src: Float32Array, at: number): Float32Array {
  const len = up8(src.length);
  const { mem } = rt.view(at + len);
  mem.set(src, at);
  mem.fill(0, at + src.length, at + len);
  rt.sigmoid(at * 4, (at + len) * 4);
  return mem;
}

export function groupNormF32(
  rt: SimdRuntime,
  x: Float32Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
  spec: GroupNormSpec,
  y: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
): void {
  const { n, channels, groups, spatial, eps } = spec;
  const { cg, size } = normGroups(spec);
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      const o = (s * channels + g * cg) * spatial;
      let sum = 0;
      for (let i = o; i < o + size; i++) sum += x[i]!;
      const mu = sum / size;
      let sq = 0;
      for (let i = o; i < o + size; i++) {
        const d = x[i]! - mu;
        sq += d * d;
      }
      const r = 1 / Math.sqrt(sq / size + eps);
      mean[s * groups + g] = mu;
      rstd[s * groups + g] = r;
      // z = (x − μ)·r·w + b = x·a + c with a = r·w, c = b − μ·a
      for (let ch = g * cg, k = o; ch < (g + 1) * cg; ch++) {
        const a = weight === null ? r : r * weight[ch]!;
        const c = (bias === null ? 0 : bias[ch]!) - mu * a;
        for (const end = k + spatial; k < end; k++) y[k] = x[k]! * a + c;
      }
    }
  }
  if (spec.activation !== 'silu') return;
  const sg = sigmoidInto(rt, y, 0);
  for (let k = 0; k < y.length; k++) y[k] = y[k]! * sg[k]!;
}

/** The backward of groupNormF32 (groupNormBackwardKernel in fused.ts gives the equations). */
export function groupNormBackwardF32(
  rt: SimdRuntime,
  x: Float32Array,
  weight: Float32Array | null,
  bias: Float32Array | null,
  mean: Float32Array,
  rstd: Float32Array,
  dy: Float32Array,
  spec: GroupNormSpec,
  dx: Float32Array,
  dweight: Float32Array | null,
  dbias: Float32Array | null,
): void {
  const { n, channels, groups, spatial } = spec;
  const { cg, size, silu } = normGroups(spec);
  const dw = new Float64Array(channels);
  const db = new Float64Array(channels);
  // dz = dy, or dy·σ(z)·(1 + z·(1 − σ(z))) with the SiLU; z is recomputed into dx first.
  const dz = silu ? dx : dy;
  let sg: Float32Array | null = null;
  if (silu) {
    for (let s = 0; s < n; s++) {
      for (let g = 0; g < groups; g++) {
        const mu = mean[s * groups + g]!;
        const r = rstd[s * groups + g]!;
        for (let ch = g * cg, k = (s * channels + g * cg) * spatial; ch < (g + 1) * cg; ch++) {
          const a = weight === null ? r : r * weight[ch]!;
          const c = (bias === null ? 0 : bias[ch]!) - mu * a;
          for (const end = k + spatial; k < end; k++) dx[k] = x[k]! * a + c;
        }
      }
    }
    sg = sigmoidInto(rt, dx, 0);
    for (let k = 0; k < dx.length; k++) {
      const z = dx[k]!;
      const sk = sg[k]!;
      dx[k] = dy[k]! * sk * (1 + z * (1 - sk));
    }
  }
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      const o = (s * channels + g * cg) * spatial;
      const mu = mean[s * groups + g]!;
      const r = rstd[s * groups + g]!;
      let sum1 = 0; // Σ dx̂ = Σ dz·w
      let sum2 = 0; // Σ dx̂·x̂
      for (let ch = g * cg, k = o; ch < (g + 1) * cg; ch++) {
        let sd = 0;
        let sdx = 0;
        for (const end = k + spatial; k < end; k++) {
          const d = dz[k]!;
          sd += d;
          sdx += d * (x[k]! - mu);
        }
        sdx *= r;
        dw[ch]! += sdx;
        db[ch]! += sd;
        const w = weight === null ? 1 : weight[ch]!;
        sum1 += sd * w;
        sum2 += sdx * w;
      }
      // dx = r·(dz·w − Σdx̂/M − x̂·Σ(dx̂ x̂)/M) = dz·(r·w) + x·β + γ
      const m1 = sum1 / size;
      const m2 = sum2 / size;
      for (let ch = g * cg, k = o; ch < (g + 1) * cg; ch++) {
        const rw = weight === null ? r : r * weight[ch]!;
        const beta = -r * r * m2;
        const gamma = r * (mu * r * m2 - m1);
        for (const end = k + spatial; k < end; k++) dx[k] = dz[k]! * rw + x[k]! * beta + gamma;
      }
    }
  }
  dweight?.set(dw);
  dbias?.set(db);
}
