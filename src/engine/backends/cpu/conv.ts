/**
 * conv2d on the CPU by im2col + gemm, one image and group at a time (the column buffer is
 * [cIn/groups · kh · kw, hOut · wOut] and reused). The input gradient is the adjoint: gemm to
 * columns, then col2im scatter-add.
 */
import type { Conv2dSpec } from '../../backend.js';
import type { TypedArray } from '../../dtype.js';
import { gemm } from './matmul.js';

function im2col(x: TypedArray, s: Conv2dSpec, n: number, g: number, cols: Float64Array): void {
  const cinG = s.cIn / s.groups;
  const P = s.hOut * s.wOut;
  let row = 0;
  for (let c = 0; c < cinG; c++) {
    const plane = (n * s.cIn + g * cinG + c) * s.h * s.w;
    for (let ky = 0; ky < s.kh; ky++) {
      for (let kx = 0; kx < s.kw; kx++, row++) {
        const base = row * P;
        for (let oy = 0; oy < s.hOut; oy++) {
          const iy = oy * s.strideH - s.padH + ky * s.dilationH;
          const o = base + oy * s.wOut;
          if (iy < 0 || iy >= s.h) {
            cols.fill(0, o, o + s.wOut);
            continue;
          }
          const rowOff = plane + iy * s.w;
          for (let ox = 0; ox < s.wOut; ox++) {
            const ix = ox * s.strideW - s.padW + kx * s.dilationW;
            cols[o + ox] = ix >= 0 && ix < s.w ? x[rowOff + ix]! : 0;
          }
        }
      }
    }
  }
}

function col2imAdd(cols: Float64Array, s: Conv2dSpec, n: number, g: number, dx: TypedArray): void {
  const cinG = s.cIn / s.groups;
  const P = s.hOut * s.wOut;
  let row = 0;
  for (let c = 0; c < cinG; c++) {
    const plane = (n * s.cIn + g * cinG + c) * s.h * s.w;
    for (let ky = 0; ky < s.kh; ky++) {
      for (let kx = 0; kx < s.kw; kx++, row++) {
        const base = row * P;
        for (let oy = 0; oy < s.hOut; oy++) {
          const iy = oy * s.strideH - s.padH + ky * s.dilationH;
          if (iy < 0 || iy >= s.h) continue;
          const rowOff = plane + iy * s.w;
          for (let ox = 0; ox < s.wOut; ox++) {
            const ix = ox * s.strideW - s.padW + kx * s.dilationW;
            if (ix >= 0 && ix < s.w) dx[rowOff + ix]! += cols[base + oy * s.wOut + ox]!;
          }
        }
      }
    }
  }
}

export function conv2dKernel(x: TypedArray, w: TypedArray, s: Conv2dSpec, out: TypedArray): void {
  const K = (s.cIn / s.groups) * s.kh * s.kw;
  const P = s.hOut * s.wOut;
  const coutG = s.cOut / s.groups;
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
  const K = (s.cIn / s.groups) * s.kh * s.kw;
  const P = s.hOut * s.wOut;
  const coutG = s.cOut / s.groups;
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
  const K = (s.cIn / s.groups) * s.kh * s.kw;
  const P = s.hOut * s.wOut;
  const coutG = s.cOut / s.groups;
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
