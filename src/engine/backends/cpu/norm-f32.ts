/**
 * float32 group norm (+ SiLU), forward and backward: the definitions of fused.ts, with the
 * per-element work in the module's vector loops (`sum_pow`, `lincomb`, `sum_dot`, `silu`,
 * `silu_grad` in wasm/gemm.wat): statistics and affine maps in float64 lanes as the f64
 * definitions compute them, each result rounded once to float32, and σ four lanes at a time
 * (Cephes' expf, ~1e-7 relative) instead of Math.exp, which costs ~10 ns an element in V8. Tested
 * against the f64 reference kernels.
 */
import type { GroupNormSpec } from '../../backend.js';
import { normGroups } from './fused.js';
import { type SimdRuntime } from './simd-gemm.js';

/** Floats rounded up to 4: the module's vector loops take whole vectors. */
const up4 = (n: number): number => Math.ceil(n / 4) * 4;

/**
 * Group norm (+ SiLU) over float32 x: per group, μ and r = 1/√(σ² + ε) from float64 sums, then
 * y = x·a + c per channel with a = r·w, c = b − μ·a, all in the module's memory.
 */
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
  // Memory (floats): x at 0, y at Y, each padded to whole vectors.
  const L = up4(x.length);
  const Y = L;
  const { mem } = rt.view(2 * L);
  mem.set(x, 0);
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      const o = (s * channels + g * cg) * spatial;
      const mu = rt.sumPow(o * 4, size, 0, 1) / size;
      const r = 1 / Math.sqrt(rt.sumPow(o * 4, size, mu, 2) / size + eps);
      mean[s * groups + g] = mu;
      rstd[s * groups + g] = r;
      for (let ch = g * cg, k = o; ch < (g + 1) * cg; ch++, k += spatial) {
        const a = weight === null ? r : r * weight[ch]!;
        const c = (bias === null ? 0 : bias[ch]!) - mu * a;
        rt.lincomb(k * 4, -1, (Y + k) * 4, spatial, a, 0, c);
      }
    }
  }
  if (spec.activation === 'silu') {
    mem.fill(0, Y + x.length, Y + L);
    rt.silu(Y * 4, (Y + L) * 4);
  }
  y.set(mem.subarray(Y, Y + x.length));
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
  // Memory (floats): x at 0, dy at DY, z (then dz with the SiLU) at DZ, two float64 sums at SUMS;
  // dx is written over dz in place (over dy without the SiLU).
  const L = up4(x.length);
  const DY = L;
  const DZ = 2 * L;
  const SUMS = 3 * L;
  const { mem } = rt.view(SUMS + 4);
  const sums = new Float64Array(mem.buffer, SUMS * 4, 2);
  mem.set(x, 0);
  mem.set(dy, DY);
  mem.fill(0, DY + dy.length, DY + L);
  // dz = dy, or dy·σ(z)·(1 + z·(1 − σ(z))) with the SiLU; z is recomputed into DZ first.
  if (silu) {
    for (let s = 0; s < n; s++) {
      for (let g = 0; g < groups; g++) {
        const mu = mean[s * groups + g]!;
        const r = rstd[s * groups + g]!;
        for (let ch = g * cg, k = (s * channels + g * cg) * spatial; ch < (g + 1) * cg; ch++) {
          const a = weight === null ? r : r * weight[ch]!;
          const c = (bias === null ? 0 : bias[ch]!) - mu * a;
          rt.lincomb(k * 4, -1, (DZ + k) * 4, spatial, a, 0, c);
          k += spatial;
        }
      }
    }
    mem.fill(0, DZ + x.length, DZ + L);
    rt.siluGrad(DZ * 4, DY * 4, L * 4);
  }
  const dz = silu ? DZ : DY;
  for (let s = 0; s < n; s++) {
    for (let g = 0; g < groups; g++) {
      const o = (s * channels + g * cg) * spatial;
      const mu = mean[s * groups + g]!;
      const r = rstd[s * groups + g]!;
      let sum1 = 0; // Σ dx̂ = Σ dz·w
      let sum2 = 0; // Σ dx̂·x̂
      for (let ch = g * cg, k = o; ch < (g + 1) * cg; ch++, k += spatial) {
        rt.sumDot((dz + k) * 4, k * 4, spatial, mu, SUMS * 4);
        const sd = sums[0]!;
        const sdx = sums[1]! * r;
        dw[ch]! += sdx;
        db[ch]! += sd;
        const w = weight === null ? 1 : weight[ch]!;
        sum1 += sd * w;
        sum2 += sdx * w;
      }
      // dx = r·(dz·w − Σdx̂/M − x̂·Σ(dx̂ x̂)/M) = dz·(r·w) + x·β + γ
      const m1 = sum1 / size;
      const m2 = sum2 / size;
      const beta = -r * r * m2;
      const gamma = r * (mu * r * m2 - m1);
      for (let ch = g * cg, k = o; ch < (g + 1) * cg; ch++, k += spatial) {
        const rw = weight === null ? r : r * weight[ch]!;
        rt.lincomb((dz + k) * 4, k * 4, (dz + k) * 4, spatial, rw, beta, gamma);
      }
    }
  }
  dx.set(mem.subarray(dz, dz + x.length));
  dweight?.set(dw);
  dbias?.set(db);
}
