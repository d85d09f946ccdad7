/**
 * Stride-1 3×3 float32 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016): each 2×2 block of output pixels is
 *   Y = Aᵀ [ Σ_ci (G g_{co,ci} Gᵀ) ⊙ (Bᵀ d_{ci} Bᵀ) ] A
 * over the 4×4 input tile d around it, 16 multiplies where the direct form takes 36. The sum over
 * ci is one product per element ξ of the 4×4 tile: M_ξ[co, t] = Σ_ci U_ξ[co, ci] · V_ξ[ci, t],
 * 16 products of the SIMD gemm with k = cIn over every tile t of the batch. The transforms of the
 * input (Bᵀ d B) and of the output (Aᵀ M A) run in the wasm module (`winograd_in`, `winograd_out`
 * in gemm.wat), the filter's (G g Gᵀ) here in float64, rounded once.
 *
 * Every tile is computed the same way whatever batch it is in and however the gemm's columns are
 * split between threads, so an image's output does not depend on the batch; which algorithm a
 * convolution takes depends only on its shape without the batch size (winogradApplies).
 */
import type { Conv2dSpec } from '../../backend.js';
import { copyPadded, type PaddedInput } from './conv-padded.js';
import { PANEL_M, PANEL_N, packedATable, type SimdRuntime, up4 } from './simd-gemm.js';

/** Tile elements: 4×4. */
const XI = 16;

let enabled = true;

/**
 * Turns Winograd off (or back on) for this thread, so that a benchmark can time the direct product
 * beside it in one process. Not for use while a model runs on several threads: replicas must
 * compute every image the same way.
 */
export function setCpuWinograd(on: boolean): void {
  enabled = on;
}

/**
 * Whether a float32 convolution takes Winograd: 3×3, stride 1, no dilation, one group, at least
 * 7 output columns (the transforms take four tiles of a row at a time) and enough channels for
 * the products to outweigh the transforms. Not the batch size: see the module comment.
 */
export function winogradApplies(s: Conv2dSpec): boolean {
  return (
    enabled &&
    s.kh === 3 &&
    s.kw === 3 &&
    s.strideH === 1 &&
    s.strideW === 1 &&
    s.dilationH === 1 &&
    s.dilationW === 1 &&
    s.groups === 1 &&
    s.wOut >= 7 &&
    s.hOut >= 1 &&
    s.cIn >= 8 &&
    s.cOut >= 8
  );
}

/**
 * U_ξ[co, ci] = (G g Gᵀ)[ξ] of every filter g = w[co, ci], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
 * written as 16 matrices packed in panels of 4 rows (output channels; rows past cOut are zero):
 * element ξ of (co, ci) at base + ξ·xiStride + ⌊co/4⌋·4·cIn + 4ci + co mod 4.
 */
function packFilters(
  w: Float32Array,
  cOut: number,
  cIn: number,
  mem: Float32Array,
  base: number,
  xiStride: number,
): void {
  mem.fill(0, base, base + XI * xiStride);
  const t = new Float64Array(12);
  for (let co = 0; co < cOut; co++) {
    for (let ci = 0; ci < cIn; ci++) {
      const g = (co * cIn + ci) * 9;
      // t = G g (4×3)
      for (let c = 0; c < 3; c++) {
        const g0 = w[g + c]!;
        const g1 = w[g + 3 + c]!;
        const g2 = w[g + 6 + c]!;
        t[c] = g0;
        t[3 + c] = (g0 + g1 + g2) / 2;
        t[6 + c] = (g0 - g1 + g2) / 2;
        t[9 + c] = g2;
      }
      const at = base + (co >> 2) * PANEL_M * cIn + ci * PANEL_M + (co & 3);
      // U = t Gᵀ (4×4)
      for (let i = 0; i < 4; i++) {
        const t0 = t[3 * i]!;
        const t1 = t[3 * i + 1]!;
        const t2 = t[3 * i + 2]!;
        const o = at + 4 * i * xiStride;
        mem[o] = t0;
        mem[o + xiStride] = (t0 + t1 + t2) / 2;
        mem[o + 2 * xiStride] = (t0 - t1 + t2) / 2;
        mem[o + 3 * xiStride] = t2;
      }
    }
  }
}

/**
 * out = conv2d(x, w) (+ bias[co], added to the rounded result as a separate add would) for a
 * convolution that winogradApplies to, any padding.
 */
export function conv2dWinogradF32(
  rt: SimdRuntime,
  x: Float32Array,
  w: Float32Array,
  s: Conv2dSpec,
  out: Float32Array,
  bias: Float32Array | null = null,
): void {
  const { n, cIn, cOut, hOut, wOut } = s;
  if (out.length === 0) return;
  // Tiles of 2×2 outputs; the input grid is padded to cover every tile's 4×4 window.
  const th = Math.ceil(hOut / 2);
  const tw = Math.ceil(wOut / 2);
  const T = n * th * tw;
  const Hp = 2 * th + 2;
  const Wp = 2 * tw + 2;
  const grid: PaddedInput = { Hp, Wp, plane: Hp * Wp, cols: n * Hp * Wp, ldb: n * Hp * Wp };
  const mp = Math.ceil(cOut / PANEL_M);
  const np = Math.ceil(T / PANEL_N);
  // V and M rows: every tile, rounded up to whole panels of 8, and 16 floats more, so that the 64
  // rows of a B panel (2^k apart otherwise) do not all fall into one set of the L1 cache.
  const ldt = np * PANEL_N + 16;
  const aXi = up4(mp * PANEL_M * cIn);
  const vXi = cIn * ldt;
  const cXi = mp * PANEL_M * ldt;
  // Memory (floats): U, tables, padded x, V, M, the 2th×2tw outputs, staging, bias.
  const aBase = 0;
  const aTables = aBase + XI * aXi;
  const bTables = up4(aTables + XI * mp * PANEL_M);
  const xBase = up4(bTables + XI * cIn);
  const vBase = up4(xBase + cIn * grid.ldb);
  const cBase = up4(vBase + XI * vXi);
  const yBase = up4(cBase + XI * cXi);
  const stage = up4(yBase + n * cOut * 4 * th * tw);
  const biasAt = up4(stage + Math.max(x.length, out.length));
  const { mem, ints } = rt.view(biasAt + cOut);
  if (bias !== null) mem.set(bias, biasAt);
  packFilters(w, cOut, cIn, mem, aBase, aXi);
  copyPadded(rt, x, s, grid, mem, xBase, stage);
  rt.winogradIn(
    xBase * 4,
    vBase * 4,
    cIn,
    grid.ldb * 4,
    n,
    grid.plane * 4,
    th,
    tw,
    Wp * 4,
    vXi * 4,
    ldt * 4,
  );
  // Columns past the last tile: zeros, not stale memory, so that no denormal slows the product.
  if (np * PANEL_N > T) {
    for (let r = 0; r < XI * cIn; r++)
      mem.fill(0, vBase + r * ldt + T, vBase + r * ldt + np * PANEL_N);
  }
  for (let xi = 0; xi < XI; xi++) {
    const aTable = aTables + xi * mp * PANEL_M;
    const bTable = bTables + xi * cIn;
    packedATable(ints, aTable, aBase + xi * aXi, mp, cIn);
    for (let ci = 0; ci < cIn; ci++) ints[bTable + ci] = (vBase + xi * vXi + ci * ldt) * 4;
    rt.run({
      aTable: aTable * 4,
      aStep: PANEL_M * 4,
      bTable: bTable * 4,
      bPanel: PANEL_N * 4,
      c: (cBase + xi * cXi) * 4,
      mp,
      np,
      k: cIn,
      ldc: ldt,
      accumulate: false,
    });
  }
  rt.winogradOut(cBase * 4, yBase * 4, cOut, ldt * 4, cXi * 4, n, th, tw);
  // out[img, co, oy, :] = Y[img, co, oy, 0..wOut) (+ bias[co])
  const rows = [
    yBase * 4,
    stage * 4,
    wOut,
    n,
    cOut * 4 * th * tw * 4,
    cOut * hOut * wOut * 4,
    cOut,
    4 * th * tw * 4,
    hOut * wOut * 4,
    hOut,
    2 * tw * 4,
    wOut * 4,
  ];
  if (bias === null) rt.copyRows(...rows);
  else rt.copyRowsBias(...rows, biasAt * 4, 0, 4);
  out.set(mem.subarray(stage, stage + out.length));
}
