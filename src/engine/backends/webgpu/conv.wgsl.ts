/**
 * WGSL ports of conv2dKernel, conv2dGradInputKernel and conv2dGradWeightKernel in
 * backends/cpu/conv.ts, as implicit GEMMs on the GEMM template: the loaders index the input
 * (NCHW) and weight (OIHW) in place, so there is no im2col buffer.
 *
 *   forward     C[co, (n,oy,ox)]  = Σ_(ci,ky,kx) W[co, (ci,ky,kx)] · x[n, ci, oy·s − p + ky·d, …]
 *   grad input  C[ci, (n,iy,ix)]  = Σ_(co,ky,kx) W[co, ci, ky, kx] · dy[n, co, (iy + p − ky·d)/s, …]
 *               (terms whose iy + p − ky·d is not a multiple of the stride are zero)
 *   grad weight C[co, (ci,ky,kx)] = Σ_(n,oy,ox) dy[n, co, oy, ox] · x[n, ci, oy·s − p + ky·d, …]
 *               (long K = batch·hOut·wOut: split-K slices summed by the reduce kernel)
 * Groups are the batch (z) index of the GEMM.
 *
 * The (ci, ky, kx) or (co, ky, kx) axis is decoded through a small table built on the host once
 * per geometry (precomputed offsets, as in cuDNN's implicit GEMM), so the loaders do no integer
 * division and one pipeline serves every kernel size, stride, padding and dilation.
 */
import type { Conv2dSpec } from '../../backend.js';
import {
  dispatchGemm,
  gemmKernel,
  type GemmSpec,
  type GemmTile,
  isAligned,
  pickSplits,
  pickTile,
} from './gemm.wgsl.js';
import type { LaunchContext } from './kernel.js';
import { paramFields } from './params.js';
import type { GpuBuf } from './pool.js';
import { launchReduce } from './reduce.wgsl.js';
import type { Kernel } from './runtime.js';

const CONV_PARAMS = paramFields({
  h: 'u32',
  w: 'u32',
  hout: 'u32',
  wout: 'u32',
  cin: 'u32',
  cout: 'u32',
  cing: 'u32',
  coutg: 'u32',
  sh: 'u32',
  sw: 'u32',
  ph: 'i32',
  pw: 'i32',
  khw: 'u32',
  cslice: 'u32',
});

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
    sh: s.strideH,
    sw: s.strideW,
    ph: s.padH,
    pw: s.padW,
    khw: s.kh * s.kw,
    cslice,
  };
}

/**
 * A conv GEMM: operands `a` and `b` and the window table `tab` in, C out, the conv parameters;
 * every conv reads its A operand along k.
 */
function convGemmKernel(
  [a, b]: readonly [string, string],
  spec: Omit<GemmSpec, 'buffers' | 'params' | 'aMajor'>,
): Kernel {
  return gemmKernel({
    ...spec,
    buffers: [
      { name: a, type: 'f32', kind: 'read' },
      { name: b, type: 'f32', kind: 'read' },
      { name: 'tab', type: 'vec4<i32>', kind: 'read' },
      { name: 'C', type: 'f32', kind: 'write' },
    ],
    params: CONV_PARAMS,
    aMajor: 'k',
  });
}

/**
 * Offsets of the kernel-window axis: for forward and grad weight, entry (ci, ky, kx) holds
 * (ci·H·W + ky·dH·W + kx·dW, ky·dH, kx·dW, 0); for grad input, entry (co, ky, kx) holds
 * (co·hOut·wOut, ky·dH, kx·dW, (co·cinG)·kh·kw + ky·kw + kx), the weight offset of (co, ·, ky, kx).
 */
function windowTable(s: Conv2dSpec, forInput: boolean): Int32Array {
  const c = forInput ? s.cOut / s.groups : s.cIn / s.groups;
  const khw = s.kh * s.kw;
  const t = new Int32Array(Math.max(c * khw, 1) * 4);
  for (let ch = 0; ch < c; ch++) {
    for (let ky = 0; ky < s.kh; ky++) {
      for (let kx = 0; kx < s.kw; kx++) {
        const e = 4 * (ch * khw + ky * s.kw + kx);
        const dy = ky * s.dilationH;
        const dx = kx * s.dilationW;
        if (forInput) {
          t.set([ch * s.hOut * s.wOut, dy, dx, ch * (s.cIn / s.groups) * khw + ky * s.kw + kx], e);
        } else {
          t.set([ch * s.h * s.w + dy * s.w + dx, dy, dx, 0], e);
        }
      }
    }
  }
  return t;
}

function tableFor(ctx: LaunchContext, s: Conv2dSpec, forInput: boolean): GpuBuf {
  const key = [
    forInput ? 'dx' : 'x',
    s.cIn / s.groups,
    s.cOut / s.groups,
    s.kh,
    s.kw,
    s.dilationH,
    s.dilationW,
    forInput ? `${s.hOut}x${s.wOut}` : `${s.h}x${s.w}`,
  ].join(',');
  return ctx.constant(`conv/${key}`, () => windowTable(s, forInput));
}

export function conv2dKernel(tile: GemmTile, checked: boolean) {
  return convGemmKernel(['X', 'Wt'], {
    name: 'conv-fwd',
    tile,
    checked,
    bMajor: 'n',
    helpers: `fn xload(base: i32, k: u32, iy0: i32, ix0: i32) -> f32 {
  let t = tab[k];
  let iy = iy0 + t.y;
  let ix = ix0 + t.z;
  if (iy < 0 || ix < 0 || iy >= i32(p_h()) || ix >= i32(p_w())) { return 0.0; }
  return X[u32(base + t.x)];
}`,
    prelude: `  let K = p_K();
  let P = p_hout() * p_wout();
  let grp = zb;`,
    setupB: (n) => `  let bImg = ${n} / P;
  let bP = ${n} % P;
  let bIy0 = i32((bP / p_wout()) * p_sh()) - p_ph();
  let bIx0 = i32((bP % p_wout()) * p_sw()) - p_pw();
  let bBase = i32((bImg * p_cin() + grp * p_cing()) * p_h() * p_w()) + bIy0 * i32(p_w()) + bIx0;`,
    loadA: (m, k) => `Wt[(grp * p_coutg() + ${m}) * K + ${k}]`,
    loadB: (k) => `xload(bBase, ${k}, bIy0, bIx0)`,
    rowOffset: (m) => `(grp * p_coutg() + ${m}) * P`,
    colOffset: (n) => `(${n} / P) * p_cout() * P + ${n} % P`,
  });
}

/** Grad input; `unitStride` drops the divisibility test and division by the stride. */
export function conv2dGradInputKernel(tile: GemmTile, checked: boolean, unitStride: boolean) {
  const toOut = unitStride
    ? `  let oy = u32(ty);
  let ox = u32(tx);`
    : `  if (u32(ty) % p_sh() != 0u || u32(tx) % p_sw() != 0u) { return 0.0; }
  let oy = u32(ty) / p_sh();
  let ox = u32(tx) / p_sw();`;
  return convGemmKernel(['DY', 'Wt'], {
    name: `conv-dx${unitStride ? '-s1' : ''}`,
    tile,
    checked,
    bMajor: 'n',
    helpers: `fn dyload(base: u32, k: u32, iy: u32, ix: u32) -> f32 {
  let t = tab[k];
  let ty = i32(iy) + p_ph() - t.y;
  let tx = i32(ix) + p_pw() - t.z;
  if (ty < 0 || tx < 0) { return 0.0; }
${toOut}
  if (oy >= p_hout() || ox >= p_wout()) { return 0.0; }
  return DY[base + u32(t.x) + oy * p_wout() + ox];
}`,
    prelude: `  let HW = p_h() * p_w();
  let grp = zb;
  let wBase = grp * p_coutg() * p_cing() * p_khw();`,
    setupB: (n) => `  let bImg = ${n} / HW;
  let bPix = ${n} % HW;
  let bIy = bPix / p_w();
  let bIx = bPix % p_w();
  let bBase = (bImg * p_cout() + grp * p_coutg()) * p_hout() * p_wout();`,
    loadA: (m, k) => `Wt[wBase + u32(tab[${k}].w) + ${m} * p_khw()]`,
    loadB: (k) => `dyload(bBase, ${k}, bIy, bIx)`,
    rowOffset: (m) => `(grp * p_cing() + ${m}) * HW`,
    colOffset: (n) => `(${n} / HW) * p_cin() * HW + ${n} % HW`,
  });
}

export function conv2dGradWeightKernel(tile: GemmTile, checked: boolean) {
  return convGemmKernel(['X', 'DY'], {
    name: 'conv-dw',
    tile,
    checked,
    bMajor: 'k',
    helpers: `// x[img, ci, oy·s − p + ky·d, ox·s − p + kx·d] for k = (img, oy, ox), n = (ci, ky, kx).
fn xcol(grp: u32, k: u32, n: u32) -> f32 {
  let P = p_hout() * p_wout();
  let img = k / P;
  let p = k % P;
  let iy0 = i32((p / p_wout()) * p_sh()) - p_ph();
  let ix0 = i32((p % p_wout()) * p_sw()) - p_pw();
  let t = tab[n];
  let iy = iy0 + t.y;
  let ix = ix0 + t.z;
  if (iy < 0 || ix < 0 || iy >= i32(p_h()) || ix >= i32(p_w())) { return 0.0; }
  let base = i32((img * p_cin() + grp * p_cing()) * p_h() * p_w()) + iy0 * i32(p_w()) + ix0;
  return X[u32(base + t.x)];
}`,
    prelude: `  let P = p_hout() * p_wout();
  let grp = zb;`,
    loadA: (m, k) => `DY[((${k} / P) * p_cout() + grp * p_coutg() + ${m}) * P + ${k} % P]`,
    loadB: (k, n) => `xcol(grp, ${k}, ${n})`,
    rowOffset: (m) => `zs * p_cslice() + (grp * p_coutg() + ${m}) * N`,
    colOffset: (n) => n,
  });
}

function checkGroups(s: Conv2dSpec, splits = 1): void {
  if (s.groups * splits > 65535) {
    throw new Error(`webgpu conv2d: ${s.groups} groups × ${splits} K slices exceed 65535`);
  }
}

/**
 * Records an implicit GEMM of M×N×K = `mnk` per group with K in one slice (conv2d, and its input
 * gradient): operands a and b, the window table of the input (`forInput`: of dx) and `out`.
 */
function dispatchConvGemm(
  ctx: LaunchContext,
  s: Conv2dSpec,
  [m, n, k]: readonly [number, number, number],
  kernelOf: (tile: GemmTile, checked: boolean) => Kernel,
  [a, b, out]: readonly [GpuBuf, GpuBuf, GpuBuf],
  forInput: boolean,
): void {
  checkGroups(s);
  if (m * n === 0) return;
  const tile = pickTile(m, n, s.groups, ctx.runtime.device.limits.maxComputeWorkgroupStorageSize);
  dispatchGemm(
    ctx.runtime,
    kernelOf(tile, !isAligned(tile, m, n, k)),
    [a, b, tableFor(ctx, s, forInput), out],
    { M: m, N: n, K: k, kchunk: Math.max(k, 1), splits: 1, ...params(s, 0) },
    tile,
    s.groups,
  );
}

export function launchConv2d(ctx: LaunchContext, x: GpuBuf, w: GpuBuf, out: GpuBuf, s: Conv2dSpec) {
  const mnk = [s.cOut / s.groups, s.n * s.hOut * s.wOut, (s.cIn / s.groups) * s.kh * s.kw] as const;
  dispatchConvGemm(ctx, s, mnk, conv2dKernel, [x, w, out], false);
}

export function launchConv2dGradInput(
  ctx: LaunchContext,
  dy: GpuBuf,
  w: GpuBuf,
  out: GpuBuf,
  s: Conv2dSpec,
) {
  const mnk = [s.cIn / s.groups, s.n * s.h * s.w, (s.cOut / s.groups) * s.kh * s.kw] as const;
  const unit = s.strideH === 1 && s.strideW === 1;
  const kernelOf = (tile: GemmTile, checked: boolean) => conv2dGradInputKernel(tile, checked, unit);
  dispatchConvGemm(ctx, s, mnk, kernelOf, [dy, w, out], true);
}

export function launchConv2dGradWeight(
  ctx: LaunchContext,
  x: GpuBuf,
  dy: GpuBuf,
  out: GpuBuf,
  s: Conv2dSpec,
) {
  const m = s.cOut / s.groups;
  const n = (s.cIn / s.groups) * s.kh * s.kw;
  const k = s.n * s.hOut * s.wOut;
  const total = s.cOut * n;
  if (total === 0) return;
  const tile = pickTile(m, n, s.groups, ctx.runtime.device.limits.maxComputeWorkgroupStorageSize);
  const { splits, kchunk } = pickSplits(tile, m, n, s.groups, k);
  checkGroups(s, splits);
  const target = splits === 1 ? out : ctx.scratch(splits * total);
  dispatchGemm(
    ctx.runtime,
    conv2dGradWeightKernel(tile, !isAligned(tile, m, n, k)),
    [x, dy, tableFor(ctx, s, false), target],
    { M: m, N: n, K: k, kchunk, splits, ...params(s, total) },
    tile,
    s.groups * splits,
  );
  if (splits > 1) {
    launchReduce(ctx, 'sum', 'float32', target, out, 1, splits, total);
    ctx.release(target);
  }
}
