/**
 * WGSL ports of groupNormKernel and groupNormBackwardKernel in backends/cpu/fused.ts, with the
 * optional SiLU (GroupNormSpec.activation) applied in the same pass. One workgroup per (sample,
 * group): the forward reads the group three times (mean, then the centred sum of squares, then
 * the output: two-pass statistics as in the reference, not E[x²] − E[x]²), the backward twice
 * (recomputing the SiLU's input z = x̂·w + b when there is one). Per-channel sums for
 * dweight/dbias are written per sample and summed over samples by a second small kernel
 * (deterministic, no atomics).
 */
import type { GroupNormSpec } from '../../backend.js';
import { declareBuffers, kernel, type LaunchContext, mainWgsl, WG } from './kernel.js';
import { mathWgsl } from './math.wgsl.js';
import type { GpuBuf } from './pool.js';
import { subgroupArgs, workgroupReduceWgsl } from './reduce.wgsl.js';
import { grid1d, type Kernel } from './runtime.js';
import { paramFields } from './params.js';

const PARAMS = paramFields({
  groups: 'u32',
  total: 'u32',
  channels: 'u32',
  cg: 'u32',
  spatial: 'u32',
  eps: 'f32',
});

/** Which forward or backward kernel: subgroup reductions, a weight, a bias, the SiLU. */
export interface GroupNormVariant {
  subgroups: boolean;
  hasW: boolean;
  hasB: boolean;
  silu: boolean;
}

/** The variant a launch needs. */
function variantOf(
  ctx: LaunchContext,
  w: GpuBuf | null,
  b: GpuBuf | null,
  spec: GroupNormSpec,
): GroupNormVariant {
  return {
    subgroups: ctx.subgroups,
    hasW: w !== null,
    hasB: b !== null,
    silu: spec.activation === 'silu',
  };
}

/** What the forward and backward kernels of a variant share: helpers, entry arguments, key parts. */
function header(v: GroupNormVariant): {
  math: string;
  args: string;
  sg: string;
  enable: string[];
  mode: string;
  act: string;
} {
  const s = subgroupArgs(v.subgroups);
  return {
    math: `${mathWgsl(['m_isnan', 'm_nan', 'm_sigmoid'])}\n${workgroupReduceWgsl(v.subgroups)}`,
    args: s.args,
    sg: s.sg,
    enable: v.subgroups ? ['subgroups'] : [],
    mode: v.subgroups ? 'sg' : 'wg',
    act: v.silu ? 'silu' : 'none',
  };
}

/** Forward; an absent weight or bias is bound to a dummy buffer and not read. */
export function groupNormKernel(v: GroupNormVariant): Kernel {
  const { hasW, hasB, silu } = v;
  const h = header(v);
  return kernel(`group-norm/${h.mode}/${+hasW}${+hasB}/${h.act}`, () => ({
    enable: h.enable,
    buffers: declareBuffers('f32', ['x', 'w', 'b'], ['y', 'smean', 'srstd']),
    params: PARAMS,
    body: `${h.math}
${mainWgsl(h.args)}
  let q = wg.y * nwg.x + wg.x;
  if (q >= p_total()) { return; }
  let g = q % p_groups();
  let size = p_cg() * p_spatial();
  let base = ((q / p_groups()) * p_channels() + g * p_cg()) * p_spatial();
  var s = 0.0;
  for (var j = li; j < size; j += ${WG}u) { s += x[base + j]; }
  let mean = wg_sum(s, li, ${h.sg}) / f32(size);
  var sq = 0.0;
  for (var j = li; j < size; j += ${WG}u) { let d = x[base + j] - mean; sq += d * d; }
  let rstd = 1.0 / sqrt(wg_sum(sq, li, ${h.sg}) / f32(size) + p_eps());
  if (li == 0u) {
    smean[q] = mean;
    srstd[q] = rstd;
  }
  for (var c = 0u; c < p_cg(); c++) {
    let ch = g * p_cg() + c;
    let wc = ${hasW ? 'w[ch]' : '1.0'};
    let bc = ${hasB ? 'b[ch]' : '0.0'};
    let o = base + c * p_spatial();
    for (var j = li; j < p_spatial(); j += ${WG}u) {
      let z = (x[o + j] - mean) * rstd * wc + bc;
      y[o + j] = ${silu ? 'z * m_sigmoid(z)' : 'z'};
    }
  }
}`,
  }));
}

/**
 * Backward; writes dx, and per-sample channel sums into pwb ([n, C] of Σ dz·x̂, then [n, C] of
 * Σ dz) when there is a weight. With the SiLU, dz = dy·σ(z)(1 + z(1 − σ(z))) from z recomputed.
 */
export function groupNormBackwardKernel(v: GroupNormVariant): Kernel {
  const { hasW, hasB, silu } = v;
  const h = header(v);
  // The gradient at the affine output for element o + j of channel ch.
  const dz = silu
    ? `fn dz_at(k: u32, xh: f32, ch: u32) -> f32 {
  let z = xh * ${hasW ? 'w[ch]' : '1.0'} + ${hasB ? 'b[ch]' : '0.0'};
  let sg = m_sigmoid(z);
  return dy[k] * sg * (1.0 + z * (1.0 - sg));
}`
    : `fn dz_at(k: u32, xh: f32, ch: u32) -> f32 { return dy[k]; }`;
  const key = `group-norm-bwd/${h.mode}/${+hasW}${+(hasB && silu)}/${h.act}`;
  return kernel(key, () => ({
    enable: h.enable,
    buffers: declareBuffers('f32', ['x', 'w', 'b', 'smean', 'srstd', 'dy'], ['dx', 'pwb']),
    params: PARAMS,
    body: `${h.math}
${dz}
${mainWgsl(h.args)}
  let q = wg.y * nwg.x + wg.x;
  if (q >= p_total()) { return; }
  let n = q / p_groups();
  let g = q % p_groups();
  let size = p_cg() * p_spatial();
  let base = (n * p_channels() + g * p_cg()) * p_spatial();
  let mean = smean[q];
  let rstd = srstd[q];
  // Per channel: Σ dy·x̂ and Σ dy; the group sums of dx̂ = dy·w follow from them.
  var sum1 = 0.0;
  var sum2 = 0.0;
  for (var c = 0u; c < p_cg(); c++) {
    let ch = g * p_cg() + c;
    let o = base + c * p_spatial();
    var a = vec2<f32>(0.0);
    for (var j = li; j < p_spatial(); j += ${WG}u) {
      let xh = (x[o + j] - mean) * rstd;
      let d = dz_at(o + j, xh, ch);
      a += vec2<f32>(d * xh, d);
    }
    a = wg_sum2(a, li, ${h.sg});
    let wc = ${hasW ? 'w[ch]' : '1.0'};
    sum1 += wc * a.y;
    sum2 += wc * a.x;
    ${hasW ? 'if (li == 0u) { let nc = n * p_channels() + ch; pwb[nc] = a.x; pwb[p_total() / p_groups() * p_channels() + nc] = a.y; }' : ''}
  }
  let m1 = sum1 / f32(size);
  let m2 = sum2 / f32(size);
  for (var c = 0u; c < p_cg(); c++) {
    let ch = g * p_cg() + c;
    let wc = ${hasW ? 'w[ch]' : '1.0'};
    let o = base + c * p_spatial();
    for (var j = li; j < p_spatial(); j += ${WG}u) {
      let xh = (x[o + j] - mean) * rstd;
      dx[o + j] = rstd * (dz_at(o + j, xh, ch) * wc - m1 - xh * m2);
    }
  }
}`,
  }));
}

/** dweight[c] = Σ_n pwb[n, c] and dbias[c] = Σ_n pwb[N + n, c], one thread per channel. */
export function groupNormDwDbKernel(): Kernel {
  return kernel('group-norm-dwdb', () => ({
    buffers: declareBuffers('f32', ['pwb'], ['dw', 'db']),
    params: paramFields({ n: 'u32', channels: 'u32' }),
    body: `${mainWgsl()}
  let c = (wg.y * nwg.x + wg.x) * ${WG}u + li;
  let C = p_channels();
  if (c >= C) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var n = 0u; n < p_n(); n++) {
    sw += pwb[n * C + c];
    sb += pwb[(p_n() + n) * C + c];
  }
  dw[c] = sw;
  db[c] = sb;
}`,
  }));
}

function params(s: GroupNormSpec) {
  return {
    groups: s.groups,
    total: s.n * s.groups,
    channels: s.channels,
    cg: s.channels / s.groups,
    spatial: s.spatial,
    eps: s.eps,
  };
}

/** Records the forward; mean and rstd are [n, G]. */
export function launchGroupNorm(
  ctx: LaunchContext,
  x: GpuBuf,
  w: GpuBuf | null,
  b: GpuBuf | null,
  out: { y: GpuBuf; mean: GpuBuf; rstd: GpuBuf },
  spec: GroupNormSpec,
): void {
  const total = spec.n * spec.groups;
  if (total === 0) return;
  const dummy = ctx.runtime.status;
  ctx.runtime.dispatch(
    groupNormKernel(variantOf(ctx, w, b, spec)),
    [x, w ?? dummy, b ?? dummy, out.y, out.mean, out.rstd],
    params(spec),
    grid1d(total),
  );
}

/**
 * Records the backward; dweight/dbias (when w is given) are summed over samples. The bias is
 * read only with the activation (b may be null otherwise).
 */
export function launchGroupNormBackward(
  ctx: LaunchContext,
  x: GpuBuf,
  affine: { w: GpuBuf | null; b: GpuBuf | null },
  stats: { mean: GpuBuf; rstd: GpuBuf },
  dy: GpuBuf,
  dx: GpuBuf,
  dwdb: { dw: GpuBuf; db: GpuBuf } | null,
  spec: GroupNormSpec,
): void {
  const total = spec.n * spec.groups;
  if (total === 0) return;
  const { w, b } = affine;
  const v = variantOf(ctx, w, b, spec);
  // Without a weight there are no dweight/dbias: a one-element scratch buffer stands in.
  const pwb = ctx.scratch(dwdb === null ? 1 : 2 * spec.n * spec.channels);
  const dummy = ctx.runtime.status;
  ctx.runtime.dispatch(
    groupNormBackwardKernel(v),
    [x, w ?? dummy, v.silu ? (b ?? dummy) : dummy, stats.mean, stats.rstd, dy, dx, pwb],
    params(spec),
    grid1d(total),
  );
  if (dwdb !== null) {
    ctx.runtime.dispatch(
      groupNormDwDbKernel(),
      [pwb, dwdb.dw, dwdb.db],
      { n: spec.n, channels: spec.channels },
      grid1d(Math.ceil(spec.channels / WG)),
    );
  }
  ctx.release(pwb);
}
