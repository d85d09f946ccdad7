/**
 * WGSL ports of conv2dKernel, conv2dGradInputKernel and conv2dGradWeightKernel in
 * backends/cpu/conv.ts, as implicit GEMMs on the GEMM template: the loaders index the input
 * (NCHW) and weight (OIHW) in place, so there is no im2col buffer. Kernel size, stride, padding
 * and dilation are compiled in (a network has few distinct convolutions); sizes are parameters.
 *
 *   forward     C[co, (n,oy,ox)]  = Σ_(ci,ky,kx) W[co, (ci,ky,kx)] · x[n, ci, oy·s − p + ky·d, …]
 *   grad input  C[ci, (n,iy,ix)]  = Σ_(co,ky,kx) W[co, ci, ky, kx] · dy[n, co, (iy + p − ky·d)/s, …]
 *               (terms whose (iy + p − ky·d) is not a multiple of the stride are zero)
 *   grad weight C[co, (ci,ky,kx)] = Σ_(n,oy,ox) dy[n, co, oy, ox] · x[n, ci, oy·s − p + ky·d, …]
 *               (long K = batch·hOut·wOut: split-K slices summed by the reduce kernel)
 * Groups are the batch (z) index of the GEMM.
 */
import type { Conv2dSpec } from '../../backend.js';
import {
  gemmGrid,
  gemmKernel,
  type GemmTile,
  isAligned,
  pickSplits,
  pickTile,
} from './gemm.wgsl.js';
import type { LaunchContext } from './kernel.js';
import type { GpuBuf } from './pool.js';
import { launchReduce } from './reduce.wgsl.js';
import type { ParamField } from './params.js';

const CONV_PARAMS: readonly ParamField[] = [
  { name: 'h', type: 'u32' },
  { name: 'w', type: 'u32' },
  { name: 'hout', type: 'u32' },
  { name: 'wout', type: 'u32' },
  { name: 'cin', type: 'u32' },
  { name: 'cout', type: 'u32' },
  { name: 'cing', type: 'u32' },
  { name: 'coutg', type: 'u32' },
  { name: 'cslice', type: 'u32' },
];

/** The compiled-in geometry: WGSL constants and a key fragment. */
function geometry(s: Conv2dSpec): { key: string; consts: string } {
  const g = [s.kh, s.kw, s.strideH, s.strideW, s.padH, s.padW, s.dilationH, s.dilationW];
  const consts = `const KH = ${s.kh}u;
const KW = ${s.kw}u;
const KHW = ${s.kh * s.kw}u;
const SH = ${s.strideH}u;
const SW = ${s.strideW}u;
const PH = ${s.padH};
const PW = ${s.padW};
const DH = ${s.dilationH}u;
const DW = ${s.dilationW}u;`;
  return { key: g.join(','), consts };
}

function params(s: Conv2dSpec, cslice: number) {
  return {
    h: s.h,
    w: s.w,
    hout: s.hOut,
    wout: s.wOut,
    cin: s.cIn,
    cout: s.cOut,
    cing: s.cIn / s.groups,
    coutg: s.cOut / s.groups,
    cslice,
  };
}

const buffers = (a: string, b: string) =>
  [
    { name: a, type: 'f32', kind: 'read' },
    { name: b, type: 'f32', kind: 'read' },
    { name: 'C', type: 'f32', kind: 'write' },
  ] as const;

export function conv2dKernel(s: Conv2dSpec, tile: GemmTile, checked: boolean) {
  const g = geometry(s);
  return gemmKernel({
    name: `conv-fwd/${g.key}`,
    tile,
    checked,
    buffers: buffers('X', 'Wt'),
    params: CONV_PARAMS,
    aMajor: 'k',
    bMajor: 'n',
    helpers: `${g.consts}
fn xload(base: u32, k: u32, iy0: i32, ix0: i32) -> f32 {
  let ci = k / KHW;
  let r = k % KHW;
  let iy = iy0 + i32((r / KW) * DH);
  let ix = ix0 + i32((r % KW) * DW);
  if (iy < 0 || ix < 0 || iy >= i32(p_h()) || ix >= i32(p_w())) { return 0.0; }
  return X[base + (ci * p_h() + u32(iy)) * p_w() + u32(ix)];
}`,
    prelude: `  let K = p_K();
  let P = p_hout() * p_wout();
  let grp = zb;`,
    setupB: (n) => `  let bImg = ${n} / P;
  let bP = ${n} % P;
  let bIy0 = i32((bP / p_wout()) * SH) - PH;
  let bIx0 = i32((bP % p_wout()) * SW) - PW;
  let bBase = (bImg * p_cin() + grp * p_cing()) * p_h() * p_w();`,
    loadA: (m, k) => `Wt[(grp * p_coutg() + ${m}) * K + ${k}]`,
    loadB: (k) => `xload(bBase, ${k}, bIy0, bIx0)`,
    rowOffset: (m) => `(grp * p_coutg() + ${m}) * P`,
    colOffset: (n) => `(${n} / P) * p_cout() * P + ${n} % P`,
  });
}

export function conv2dGradInputKernel(s: Conv2dSpec, tile: GemmTile, checked: boolean) {
  const g = geometry(s);
  const strided = s.strideH > 1 || s.strideW > 1;
  return gemmKernel({
    name: `conv-dx/${g.key}`,
    tile,
    checked,
    buffers: buffers('DY', 'Wt'),
    params: CONV_PARAMS,
    aMajor: 'k',
    bMajor: 'n',
    helpers: `${g.consts}
fn dyload(base: u32, k: u32, iy: u32, ix: u32) -> f32 {
  let co = k / KHW;
  let r = k % KHW;
  let ty = i32(iy) + PH - i32((r / KW) * DH);
  let tx = i32(ix) + PW - i32((r % KW) * DW);
  if (ty < 0 || tx < 0) { return 0.0; }
  ${strided ? 'if (u32(ty) % SH != 0u || u32(tx) % SW != 0u) { return 0.0; }' : ''}
  let oy = u32(ty) / SH;
  let ox = u32(tx) / SW;
  if (oy >= p_hout() || ox >= p_wout()) { return 0.0; }
  return DY[base + (co * p_hout() + oy) * p_wout() + ox];
}`,
    prelude: `  let HW = p_h() * p_w();
  let grp = zb;`,
    setupB: (n) => `  let bImg = ${n} / HW;
  let bPix = ${n} % HW;
  let bIy = bPix / p_w();
  let bIx = bPix % p_w();
  let bBase = (bImg * p_cout() + grp * p_coutg()) * p_hout() * p_wout();`,
    loadA: (m, k) =>
      `Wt[((grp * p_coutg() + ${k} / KHW) * p_cing() + ${m}) * KHW + ${k} % KHW]`,
    loadB: (k) => `dyload(bBase, ${k}, bIy, bIx)`,
    rowOffset: (m) => `(grp * p_cing() + ${m}) * HW`,
    colOffset: (n) => `(${n} / HW) * p_cin() * HW + ${n} % HW`,
  });
}

export function conv2dGradWeightKernel(s: Conv2dSpec, tile: GemmTile, checked: boolean) {
  const g = geometry(s);
  return gemmKernel({
    name: `conv-dw/${g.key}`,
    tile,
    checked,
    buffers: buffers('X', 'DY'),
    params: CONV_PARAMS,
    aMajor: 'k',
    bMajor: 'k',
    helpers: `${g.consts}
fn xcol(grp: u32, k: u32, n: u32) -> f32 {
  let P = p_hout() * p_wout();
  let img = k / P;
  let p = k % P;
  let ci = n / KHW;
  let r = n % KHW;
  let iy = i32((p / p_wout()) * SH + (r / KW) * DH) - PH;
  let ix = i32((p % p_wout()) * SW + (r % KW) * DW) - PW;
  if (iy < 0 || ix < 0 || iy >= i32(p_h()) || ix >= i32(p_w())) { return 0.0; }
  return X[((img * p_cin() + grp * p_cing() + ci) * p_h() + u32(iy)) * p_w() + u32(ix)];
}`,
    prelude: `  let P = p_hout() * p_wout();
  let grp = zb;`,
    loadA: (m, k) => `DY[((${k} / P) * p_cout() + grp * p_coutg() + ${m}) * P + ${k} % P]`,
    loadB: (k, n) => `xcol(grp, ${k}, ${n})`,
    rowOffset: (m) => `zs * p_cslice() + (grp * p_coutg() + ${m}) * N`,
    colOffset: (n) => n,
  });
}

function checkGroups(s: Conv2dSpec): void {
  if (s.groups > 65535) throw new Error(`webgpu conv2d: ${s.groups} groups (max 65535)`);
}

export function launchConv2d(ctx: LaunchContext, x: GpuBuf, w: GpuBuf, out: GpuBuf, s: Conv2dSpec) {
  checkGroups(s);
  const m = s.cOut / s.groups;
  const n = s.n * s.hOut * s.wOut;
  const k = (s.cIn / s.groups) * s.kh * s.kw;
  if (m * n === 0) return;
  const tile = pickTile(m, n, s.groups);
  ctx.runtime.dispatch(
    conv2dKernel(s, tile, !isAligned(tile, m, n, k)),
    [x, w, out],
    { M: m, N: n, K: k, kchunk: Math.max(k, 1), splits: 1, ...params(s, 0) },
    gemmGrid(tile, m, n, s.groups),
  );
}

export function launchConv2dGradInput(
  ctx: LaunchContext,
  dy: GpuBuf,
  w: GpuBuf,
  out: GpuBuf,
  s: Conv2dSpec,
) {
  checkGroups(s);
  const m = s.cIn / s.groups;
  const n = s.n * s.h * s.w;
  const k = (s.cOut / s.groups) * s.kh * s.kw;
  if (m * n === 0) return;
  const tile = pickTile(m, n, s.groups);
  ctx.runtime.dispatch(
    conv2dGradInputKernel(s, tile, !isAligned(tile, m, n, k)),
    [dy, w, out],
    { M: m, N: n, K: k, kchunk: Math.max(k, 1), splits: 1, ...params(s, 0) },
    gemmGrid(tile, m, n, s.groups),
  );
}

export function launchConv2dGradWeight(
  ctx: LaunchContext,
  x: GpuBuf,
  dy: GpuBuf,
  out: GpuBuf,
  s: Conv2dSpec,
) {
  checkGroups(s);
  const m = s.cOut / s.groups;
  const n = (s.cIn / s.groups) * s.kh * s.kw;
  const k = s.n * s.hOut * s.wOut;
  const total = s.cOut * n;
  if (total === 0) return;
  const tile = pickTile(m, n, s.groups);
  const { splits, kchunk } = pickSplits(tile, m, n, s.groups, k);
  if (s.groups * splits > 65535) throw new Error('webgpu conv2dGradWeight: too many groups');
  const target = splits === 1 ? out : ctx.scratch(splits * total);
  ctx.runtime.dispatch(
    conv2dGradWeightKernel(s, tile, !isAligned(tile, m, n, k)),
    [x, dy, target],
    { M: m, N: n, K: k, kchunk, splits, ...params(s, total) },
    gemmGrid(tile, m, n, s.groups * splits),
  );
  if (splits > 1) {
    launchReduce(ctx, 'sum', 'float32', target, out, 1, splits, total);
    ctx.release(target);
  }
}
