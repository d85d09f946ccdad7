/** The zero-padded, channel-major copy of a convolution input that the stride-1 float32 paths read. */
import type { Conv2dSpec } from '../../backend.js';
import { PANEL_N, type SimdRuntime } from './simd-gemm.js';

/**
 * The padded, channel-major copy of a convolution input used by the stride-1 float32 paths
 * (the direct product in conv.ts and Winograd in winograd.ts, whose grid is padded further):
 * X[ci][j] at ci·ldb + j, with j = img·Hp·Wp + y·Wp + x over the zero-padded image. Output pixel
 * (oy, ox) of image img sits at j = img·Hp·Wp + oy·Wp + ox, and kernel tap (ky, kx) reads
 * X[ci][j + ky·dH·Wp + kx·dW]. ldb leaves room for the largest shift past the last column that
 * a panel of 8 reaches.
 */
export interface PaddedInput {
  Hp: number;
  Wp: number;
  plane: number;
  /** Columns n·Hp·Wp, rounded up to whole panels of 8. */
  cols: number;
  /** Floats from one channel's rows to the next's. */
  ldb: number;
}

export function paddedInput(s: Conv2dSpec): PaddedInput {
  const Hp = s.h + 2 * s.padH;
  const Wp = s.w + 2 * s.padW;
  const plane = Hp * Wp;
  const cols = Math.ceil((s.n * plane) / PANEL_N) * PANEL_N;
  const ldb = cols + (s.kh - 1) * s.dilationH * Wp + (s.kw - 1) * s.dilationW;
  return { Hp, Wp, plane, cols, ldb };
}

/**
 * Writes x into the padded layout at mem[base...] (cIn·ldb floats, zeros in the padding): x is
 * copied as it is to `stage` (x.length floats), then moved row by row by the module.
 */
export function copyPadded(
  rt: SimdRuntime,
  x: Float32Array,
  s: Conv2dSpec,
  p: PaddedInput,
  mem: Float32Array,
  base: number,
  stage: number,
) {
  mem.fill(0, base, base + s.cIn * p.ldb);
  mem.set(x, stage);
  const hw = s.h * s.w;
  // for ci, img, y: x[img, ci, y, :] → X[ci][img·plane + (y + padH)·Wp + padW]
  rt.copyRows(
    stage * 4,
    (base + s.padH * p.Wp + s.padW) * 4,
    s.w,
    s.cIn,
    hw * 4,
    p.ldb * 4,
    s.n,
    s.cIn * hw * 4,
    p.plane * 4,
    s.h,
    s.w * 4,
    p.Wp * 4,
  );
}
