/**
 * conv2d on the CPU by im2col + gemm, one image and group at a time (the column buffer is
 * [cIn/groups · kh · kw, hOut · wOut] and reused). The input gradient is the adjoint: gemm to
 * columns, then col2im scatter-add.
 */
import type { Conv2dSpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { copyPadded, type PaddedInput, paddedInput } from './conv-padded.js';
import { gemm } from './matmul.js';
import { conv2dGradWeightWinogradF32, conv2dWinogradF32, winogradApplies } from './winograd.js';
import {
  PANEL_M,
  PANEL_N,
  packedATable,
  packedBTable,
  packPanels,
  planGemm,
  type SimdRuntime,
  simdRuntime,
  unpackC,
  up4,
} from './simd-gemm.js';

/** Output columns [lo, hi) of kernel column kx read inside the input row: 0 ≤ ix < w. */
function validRange(s: Conv2dSpec, kx: number): [number, number] {
  const shift = kx * s.dilationW - s.padW; // ix = ox·strideW + shift
  const lo = Math.min(s.wOut, Math.max(0, Math.ceil(-shift / s.strideW)));
  const hi = Math.max(lo, Math.min(s.wOut, Math.ceil((s.w - shift) / s.strideW)));
  return [lo, hi];
}

/**
 * Walks the column matrix of image n, group g, whose kernel row `row` = (c, ky, kx) starts at
 * base0 + row·ld: for each row and output row oy, with o the index of output column 0, calls
 * `inside(o, lo, hi, ix)` when input row iy lies in the image (output columns [lo, hi) read it,
 * column lo at x[ix], each next one strideW further), else `outside(o)`.
 */
function forEachColumnRow(
  s: Conv2dSpec,
  n: number,
  g: number,
  base0: number,
  ld: number,
  inside: (o: number, lo: number, hi: number, ix: number) => void,
  outside: (o: number) => void = () => {},
): void {
  const cinG = s.cIn / s.groups;
  let row = 0;
  for (let c = 0; c < cinG; c++) {
    const plane = (n * s.cIn + g * cinG + c) * s.h * s.w;
    for (let ky = 0; ky < s.kh; ky++) {
      for (let kx = 0; kx < s.kw; kx++, row++) {
        const base = base0 + row * ld;
        const [lo, hi] = validRange(s, kx);
        const shift = kx * s.dilationW - s.padW;
        for (let oy = 0; oy < s.hOut; oy++) {
          const iy = oy * s.strideH - s.padH + ky * s.dilationH;
          const o = base + oy * s.wOut;
          if (iy < 0 || iy >= s.h) outside(o);
          else inside(o, lo, hi, plane + iy * s.w + lo * s.strideW + shift);
        }
      }
    }
  }
}

/** cols[base + row·P + p] = x at kernel row `row` = (c, ky, kx) and output pixel p (0 in the padding). */
function im2col(
  x: TypedArray,
  s: Conv2dSpec,
  n: number,
  g: number,
  cols: Float64Array | Float32Array,
  base0 = 0,
): void {
  const sw = s.strideW;
  forEachColumnRow(
    s,
    n,
    g,
    base0,
    s.hOut * s.wOut,
    (o, lo, hi, ix) => {
      if (lo > 0) cols.fill(0, o, o + lo);
      for (let ox = lo; ox < hi; ox++, ix += sw) cols[o + ox] = x[ix]!;
      if (hi < s.wOut) cols.fill(0, o + hi, o + s.wOut);
    },
    (o) => cols.fill(0, o, o + s.wOut),
  );
}

/** dx += col2im(cols), where column row `row` starts at cols[base0 + row·ld]. */
function col2imAdd(
  cols: Float64Array | Float32Array,
  s: Conv2dSpec,
  n: number,
  g: number,
  dx: TypedArray,
  base0 = 0,
  ld = s.hOut * s.wOut,
): void {
  const sw = s.strideW;
  forEachColumnRow(s, n, g, base0, ld, (o, lo, hi, ix) => {
    for (let ox = lo; ox < hi; ox++, ix += sw) dx[ix]! += cols[o + ox]!;
  });
}

/**
 * Writes ints[at + q] = the byte address of tap q = (ci, ky, kx), in the weight's [ci][ky][kx]
 * order, in the padded layout at `base` (floats): base + ci·ldb + ky·dH·Wp + kx·dW.
 */
function tapTable(s: Conv2dSpec, p: PaddedInput, ints: Int32Array, at: number, base: number) {
  for (let ci = 0, q = at; ci < s.cIn; ci++) {
    for (let ky = 0; ky < s.kh; ky++) {
      for (let kx = 0; kx < s.kw; kx++, q++) {
        ints[q] = (base + ci * p.ldb + ky * s.dilationH * p.Wp + kx * s.dilationW) * 4;
      }
    }
  }
}

/**
 * A stride-1, one-group float32 convolution without an im2col buffer:
 *   out[img, co, oy, ox] = Σ_{ci,ky,kx} W[co, ci, ky, kx] · X[ci][j + ky·dH·Wp + kx·dW],
 * a product whose B rows are shifted rows of the padded input X, read in place through their
 * addresses (column panels 32 bytes apart). Columns with ox ≥ wOut or oy ≥ hOut are computed on
 * the padding and dropped.
 */
function conv2dRowsF32(
  rt: SimdRuntime,
  x: Float32Array,
  w: Float32Array,
  s: Conv2dSpec,
  out: Float32Array,
  bias: Float32Array | null = null,
): void {
  if (winogradApplies(s)) return conv2dWinogradF32(rt, x, w, s, out, bias);
  const { n, cIn, cOut, kh, kw, hOut, wOut } = s;
  const p = paddedInput(s);
  const K = cIn * kh * kw;
  const mp = Math.ceil(cOut / PANEL_M);
  const ldc = p.cols;
  const aBase = 0;
  const aTable = up4(mp * PANEL_M * K);
  const bTable = up4(aTable + mp * PANEL_M);
  const bBase = up4(bTable + K);
  const cBase = up4(bBase + cIn * p.ldb);
  // x staged here before padding, and the output gathered here before its copy out
  const stage = up4(cBase + mp * PANEL_M * ldc);
  const biasAt = up4(stage + Math.max(x.length, out.length));
  const { mem, ints } = rt.view(biasAt + cOut);
  if (bias !== null) mem.set(bias, biasAt);
  packPanels(w, 0, cOut, K, K, 1, PANEL_M, mem, aBase);
  packedATable(ints, aTable, aBase, mp, K);
  tapTable(s, p, ints, bTable, bBase);
  copyPadded(rt, x, s, p, mem, bBase, stage);
  rt.run({
    aTable: aTable * 4,
    aStep: PANEL_M * 4,
    bTable: bTable * 4,
    bPanel: PANEL_N * 4,
    c: cBase * 4,
    mp,
    np: p.cols / PANEL_N,
    k: K,
    ldc,
    accumulate: false,
  });
  // out[img, co, oy, :] = C[co][img·plane + oy·Wp + (0..wOut)] (+ bias[co])
  const rows = [
    cBase * 4,
    stage * 4,
    wOut,
    n,
    p.plane * 4,
    cOut * hOut * wOut * 4,
    cOut,
    ldc * 4,
    hOut * wOut * 4,
    hOut,
    p.Wp * 4,
    wOut * 4,
  ];
  if (bias === null) rt.copyRows(...rows);
  else rt.copyRowsBias(...rows, biasAt * 4, 0, 4);
  out.set(mem.subarray(stage, stage + out.length));
}

/** Steps of k per kernel call in the weight gradient: a B chunk of 8 × 2048 floats stays in cache. */
const K_CHUNK = 2048;

/**
 * The weight gradient of a stride-1, one-group float32 convolution without im2col:
 *   dW[co, (ci, ky, kx)] = Σ_j dY'[co, j] · X[ci][j + ky·dH·Wp + kx·dW],
 * with dY' the output gradient on the padded grid (zero off the output pixels). As a product
 * dWᵀ = A·B: the rows of A are shifted rows of X read in place (4 bytes a step), B is dY'ᵀ
 * packed in panels of 8 output channels; k runs over the padded grid in chunks.
 */
function conv2dGradWeightRowsF32(
  rt: SimdRuntime,
  x: Float32Array,
  dy: Float32Array,
  s: Conv2dSpec,
  dw: Float32Array,
): void {
  const { n, cIn, cOut, kh, kw, hOut, wOut } = s;
  const p = paddedInput(s);
  const K = cIn * kh * kw;
  if (p.cols === 0) {
    dw.fill(0); // an empty batch
    return;
  }
  const mp = Math.ceil(K / PANEL_M);
  const np = Math.ceil(cOut / PANEL_N);
  const ldc = np * PANEL_N;
  const k = p.cols;
  const xBase = 0;
  const aTable = up4(cIn * p.ldb);
  const bTable = up4(aTable + mp * PANEL_M);
  const bBase = up4(bTable + K_CHUNK);
  const cBase = up4(bBase + np * PANEL_N * k);
  const stage = up4(cBase + mp * PANEL_M * ldc);
  const { mem, ints } = rt.view(stage + x.length);
  copyPadded(rt, x, s, p, mem, xBase, stage);
  // B[j, co] = dY[img, co, oy, ox] at j = img·plane + oy·Wp + ox, zero elsewhere; panel q holds
  // output channels 8q..8q+7 as [k][8].
  mem.fill(0, bBase, bBase + np * PANEL_N * k);
  for (let img = 0; img < n; img++) {
    for (let co = 0; co < cOut; co++) {
      let src = (img * cOut + co) * hOut * wOut;
      const panel = bBase + (co >> 3) * k * PANEL_N + (co & 7);
      for (let oy = 0; oy < hOut; oy++) {
        let dst = panel + (img * p.plane + oy * p.Wp) * PANEL_N;
        for (let ox = 0; ox < wOut; ox++, dst += PANEL_N) mem[dst] = dy[src++]!;
      }
    }
  }
  for (let k0 = 0; k0 < k; k0 += K_CHUNK) {
    const len = Math.min(K_CHUNK, k - k0);
    tapTable(s, p, ints, aTable, xBase + k0);
    ints.fill((xBase + k0) * 4, aTable + K, aTable + mp * PANEL_M); // rows past K: dropped
    packedBTable(ints, bTable, bBase, k0, len);
    rt.run({
      aTable: aTable * 4,
      aStep: 4,
      bTable: bTable * 4,
      bPanel: k * PANEL_N * 4,
      bStride: PANEL_N * 4,
      c: cBase * 4,
      mp,
      np,
      k: len,
      ldc,
      accumulate: k0 > 0,
    });
  }
  // dW[co, q] = C[q, co]
  for (let co = 0; co < cOut; co++) {
    for (let q = 0; q < K; q++) dw[co * K + q] = mem[cBase + q * ldc + co]!;
  }
}

/** Whether the stride-1 float32 paths (forward and weight gradient) apply. */
function stride1(s: Conv2dSpec): boolean {
  return s.strideH === 1 && s.strideW === 1 && s.groups === 1;
}

/** Whether the input gradient is a stride-1 convolution too: its padding dil·(k−1) − pad ≥ 0. */
function stride1Adjoint(s: Conv2dSpec): boolean {
  return stride1(s) && s.padH <= s.dilationH * (s.kh - 1) && s.padW <= s.dilationW * (s.kw - 1);
}

/**
 * The per-group gemm of the im2col path: K = cIn/groups · kh · kw rows of the column matrix,
 * P = hOut · wOut output pixels, coutG output channels.
 */
function im2colDims(s: Conv2dSpec): { K: number; P: number; coutG: number } {
  return {
    K: (s.cIn / s.groups) * s.kh * s.kw,
    P: s.hOut * s.wOut,
    coutG: s.cOut / s.groups,
  };
}

/**
 * out = conv2d(x, w) (+ bias[c], added to the rounded product, as a separate add would: the
 * fused and the composite results are the same bits).
 */
export function conv2dKernel(
  x: TypedArray,
  w: TypedArray,
  s: Conv2dSpec,
  out: TypedArray,
  bias: TypedArray | null = null,
): void {
  const rt = simdRuntime();
  if (
    bias instanceof Float32Array &&
    rt &&
    stride1(s) &&
    x instanceof Float32Array &&
    w instanceof Float32Array &&
    out instanceof Float32Array
  ) {
    return conv2dRowsF32(rt, x, w, s, out, bias);
  }
  if (bias !== null) {
    conv2dKernel(x, w, s, out);
    const P = s.hOut * s.wOut;
    for (let n = 0, o = 0; n < s.n; n++) {
      for (let c = 0; c < s.cOut; c++) {
        const b = bias[c]!;
        for (const end = o + P; o < end; o++) out[o] = out[o]! + b;
      }
    }
    return;
  }
  if (rt && x instanceof Float32Array && w instanceof Float32Array && out instanceof Float32Array) {
    if (stride1(s)) return conv2dRowsF32(rt, x, w, s, out);
    // float32: per group, W packed once as A; per image, im2col → B panels → SIMD gemm.
    const { K, P, coutG } = im2colDims(s);
    for (let g = 0; g < s.groups; g++) {
      const p = planGemm(rt, coutG, P, K, K * P);
      packPanels(w, g * coutG * K, coutG, K, K, 1, PANEL_M, p.mem, p.aBase);
      for (let n = 0; n < s.n; n++) {
        im2col(x, s, n, g, p.mem, p.scratchBase);
        packPanels(p.mem, p.scratchBase, P, K, 1, P, PANEL_N, p.mem, p.bBase);
        rt.run({ ...p.product, accumulate: false });
        unpackC(p, out, (n * s.cOut + g * coutG) * P, false);
      }
    }
    return;
  }
  const { K, P, coutG } = im2colDims(s);
  const cols = new Float64Array(K * P);
  const g0 = { m: coutG, n: P, k: K, transA: false, transB: false, accumulate: false };
  for (let n = 0; n < s.n; n++) {
    for (let g = 0; g < s.groups; g++) {
      im2col(x, s, n, g, cols);
      // out[n, g·coutG + co, p] = Σ_K W[g·coutG + co, K] · cols[K, p]
      gemm(g0, w, g * coutG * K, cols, 0, out, (n * s.cOut + g * coutG) * P);
    }
  }
}

export function conv2dGradWeightKernel(
  x: TypedArray,
  dy: TypedArray,
  s: Conv2dSpec,
  dw: TypedArray,
): void {
  const rt = simdRuntime();
  if (rt && x instanceof Float32Array && dy instanceof Float32Array && dw instanceof Float32Array) {
    if (winogradApplies(s)) return conv2dGradWeightWinogradF32(rt, x, dy, s, dw);
    if (stride1(s)) return conv2dGradWeightRowsF32(rt, x, dy, s, dw);
    // float32: dW_g[coutG, K] = Σ_n dY_n[coutG, P] · cols_nᵀ, accumulated in the kernel's C.
    const { K, P, coutG } = im2colDims(s);
    for (let g = 0; g < s.groups; g++) {
      const p = planGemm(rt, coutG, K, P, K * P);
      for (let n = 0; n < s.n; n++) {
        im2col(x, s, n, g, p.mem, p.scratchBase);
        packPanels(dy, (n * s.cOut + g * coutG) * P, coutG, P, P, 1, PANEL_M, p.mem, p.aBase);
        packPanels(p.mem, p.scratchBase, K, P, P, 1, PANEL_N, p.mem, p.bBase);
        rt.run({ ...p.product, accumulate: n > 0 });
      }
      if (s.n > 0) unpackC(p, dw, g * coutG * K, false);
      else dw.fill(0, g * coutG * K, (g + 1) * coutG * K);
    }
    return;
  }
  const { K, P, coutG } = im2colDims(s);
  const cols = new Float64Array(K * P);
  const acc = new Float64Array(dw.length);
  const g0 = { m: coutG, n: K, k: P, transA: false, transB: true, accumulate: true };
  for (let n = 0; n < s.n; n++) {
    for (let g = 0; g < s.groups; g++) {
      im2col(x, s, n, g, cols);
      // dW[g·coutG + co, K] += Σ_p dY[n, g·coutG + co, p] · cols[K, p]
      gemm(g0, dy, (n * s.cOut + g * coutG) * P, cols, 0, acc, g * coutG * K);
    }
  }
  dw.set(acc);
}

export function conv2dGradInputKernel(
  dy: TypedArray,
  w: TypedArray,
  s: Conv2dSpec,
  dx: TypedArray,
): void {
  const rt = simdRuntime();
  if (rt && dy instanceof Float32Array && w instanceof Float32Array && dx instanceof Float32Array) {
    if (stride1Adjoint(s)) {
      // Stride 1: dx is the convolution of dY, padded by dil·(k − 1) − pad, with the kernel
      // flipped and its channel axes swapped: W'[ci, co, ky, kx] = W[co, ci, kh−1−ky, kw−1−kx].
      const { cIn, cOut, kh, kw } = s;
      const flipped = new Float32Array(w.length);
      for (let co = 0; co < cOut; co++) {
        for (let ci = 0; ci < cIn; ci++) {
          for (let ky = 0; ky < kh; ky++) {
            for (let kx = 0; kx < kw; kx++) {
              flipped[((ci * cOut + co) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)] =
                w[((co * cIn + ci) * kh + ky) * kw + kx]!;
            }
          }
        }
      }
      const adjoint: Conv2dSpec = {
        ...s,
        cIn: cOut,
        cOut: cIn,
        h: s.hOut,
        w: s.wOut,
        hOut: s.h,
        wOut: s.w,
        padH: s.dilationH * (kh - 1) - s.padH,
        padW: s.dilationW * (kw - 1) - s.padW,
      };
      return conv2dRowsF32(rt, dy, flipped, adjoint, dx);
    }
    // float32: dcols[K, P] = W_gᵀ · dY_n in the kernel's C, then col2im into dx.
    const { K, P, coutG } = im2colDims(s);
    dx.fill(0);
    for (let g = 0; g < s.groups; g++) {
      const p = planGemm(rt, K, P, coutG);
      packPanels(w, g * coutG * K, K, coutG, 1, K, PANEL_M, p.mem, p.aBase);
      for (let n = 0; n < s.n; n++) {
        packPanels(dy, (n * s.cOut + g * coutG) * P, P, coutG, 1, P, PANEL_N, p.mem, p.bBase);
        rt.run({ ...p.product, accumulate: false });
        col2imAdd(p.mem, s, n, g, dx, p.cBase, p.ldc);
      }
    }
    return;
  }
  const { K, P, coutG } = im2colDims(s);
  const cols = new Float64Array(K * P);
  const acc = new Float64Array(dx.length);
  const g0 = { m: K, n: P, k: coutG, transA: true, transB: false, accumulate: false };
  for (let n = 0; n < s.n; n++) {
    for (let g = 0; g < s.groups; g++) {
      // dcols[K, p] = Σ_co W[g·coutG + co, K] · dY[n, g·coutG + co, p]
      gemm(g0, w, g * coutG * K, dy, (n * s.cOut + g * coutG) * P, cols, 0);
      col2imAdd(cols, s, n, g, acc);
    }
  }
  dx.set(acc);
}
