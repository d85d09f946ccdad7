/**
 * Stride-1 3×3 float32 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016): each 2×2 block of output pixels is
 *   Y = Aᵀ [ Σ_ci (G g_{co,ci} Gᵀ) ⊙ (Bᵀ d_{ci} B) ] A
 * over the 4×4 input tile d around it, 16 multiplies where the direct form takes 36. The sum over
 * ci is one product per element ξ of the 4×4 tile: M_ξ[co, t] = Σ_ci U_ξ[co, ci] · V_ξ[ci, t],
 * 16 products of the SIMD gemm with k = cIn over every tile t of the batch. The transforms of the
 * input (Bᵀ d B) and of the output (Aᵀ M A) run in the wasm module (`winograd_in`, `winograd_out`
 * in gemm.wat), the filter's (G g Gᵀ) here in float64, rounded once. The input gradient is such a
 * convolution itself (conv.ts: flipped, transposed filters); the weight gradient is the adjoint of
 * this algorithm (conv2dGradWeightWinogradF32).
 *
 * Every tile is computed the same way whatever batch it is in and however the gemm's columns are
 * split between threads, so an image's output does not depend on the batch; which algorithm a
 * convolution takes depends only on its shape without the batch size (winogradApplies).
 */
import type { Conv2dSpec } from '../../backend.js';
import { copyPadded, type PaddedInput } from './conv-padded.js';
import { PANEL_M, PANEL_N, packedATable, type SimdRuntime, up4 } from './simd-gemm.js';
import { nodeProcess } from './threads.js';

/** Tile elements: 4×4. */
const XI = 16;

/** Whether Winograd is on: SUMI_CPU_WINOGRAD=0 turns it off (read at the first convolution). */
let enabled: boolean | undefined;

/**
 * Turns Winograd off (or back on) for this thread, so that a benchmark can time the direct product
 * beside it in one process. Not for use while a model runs on several threads: replicas (whose
 * threads read SUMI_CPU_WINOGRAD for themselves) must compute every image the same way.
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
  enabled ??= nodeProcess()?.env['SUMI_CPU_WINOGRAD'] !== '0';
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

/** How a batch falls into tiles, and where V's rows are (floats). */
interface Tiles {
  /** Tile rows and columns of an image: 2×2 output pixels each. */
  th: number;
  tw: number;
  /** Tiles of the batch. */
  T: number;
  /** The input grid, padded to cover every tile's 4×4 window. */
  grid: PaddedInput;
  /** V's rows: every tile, in whole panels of 8 for the forward's product. */
  np: number;
  ldt: number;
  /** Floats between V's 16 matrices. */
  vXi: number;
}

function tilesOf(s: Conv2dSpec): Tiles {
  const th = Math.ceil(s.hOut / 2);
  const tw = Math.ceil(s.wOut / 2);
  const T = s.n * th * tw;
  const Hp = 2 * th + 2;
  const Wp = 2 * tw + 2;
  const plane = Hp * Wp;
  const grid: PaddedInput = { Hp, Wp, plane, cols: s.n * plane, ldb: s.n * plane };
  const np = Math.ceil(T / PANEL_N);
  // 16 floats more than the panels, so that the rows of a B panel (2^k apart otherwise) do not all
  // fall into one set of the L1 cache.
  const ldt = np * PANEL_N + 16;
  return { th, tw, T, grid, np, ldt, vXi: s.cIn * ldt };
}

/**
 * V[ξ][ci][t] = (Bᵀ d B)[ξ] of every input tile, at vBase: x is padded at xBase (through `stage`,
 * x.length floats) and transformed; the columns past the last tile that the product reads are
 * zeros, not stale memory, so that no denormal slows it.
 */
function transformInput(
  rt: SimdRuntime,
  x: Float32Array,
  s: Conv2dSpec,
  t: Tiles,
  mem: Float32Array,
  xBase: number,
  vBase: number,
  stage: number,
): void {
  copyPadded(rt, x, s, t.grid, mem, xBase, stage);
  const g = t.grid;
  rt.winogradIn(
    xBase * 4,
    vBase * 4,
    s.cIn,
    g.ldb * 4,
    s.n,
    g.plane * 4,
    t.th,
    t.tw,
    g.Wp * 4,
    t.vXi * 4,
    t.ldt * 4,
  );
  if (t.np * PANEL_N > t.T) {
    for (let r = 0; r < XI * s.cIn; r++) {
      mem.fill(0, vBase + r * t.ldt + t.T, vBase + r * t.ldt + t.np * PANEL_N);
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
  const t = tilesOf(s);
  const { th, tw, ldt } = t;
  const mp = Math.ceil(cOut / PANEL_M);
  const aXi = up4(mp * PANEL_M * cIn);
  const cXi = mp * PANEL_M * ldt;
  // Memory (floats): U, tables, padded x, V, M, the 2th×2tw outputs, staging, bias.
  const aBase = 0;
  const aTables = aBase + XI * aXi;
  const bTables = up4(aTables + XI * mp * PANEL_M);
  const xBase = up4(bTables + XI * cIn);
  const vBase = up4(xBase + cIn * t.grid.ldb);
  const cBase = up4(vBase + XI * t.vXi);
  const yBase = up4(cBase + XI * cXi);
  const stage = up4(yBase + n * cOut * 4 * th * tw);
  const biasAt = up4(stage + Math.max(x.length, out.length));
  const { mem, ints } = rt.view(biasAt + cOut);
  if (bias !== null) mem.set(bias, biasAt);
  packFilters(w, cOut, cIn, mem, aBase, aXi);
  transformInput(rt, x, s, t, mem, xBase, vBase, stage);
  for (let xi = 0; xi < XI; xi++) {
    const aTable = aTables + xi * mp * PANEL_M;
    const bTable = bTables + xi * cIn;
    packedATable(ints, aTable, aBase + xi * aXi, mp, cIn);
    for (let ci = 0; ci < cIn; ci++) ints[bTable + ci] = (vBase + xi * t.vXi + ci * ldt) * 4;
    rt.run({
      aTable: aTable * 4,
      aStep: PANEL_M * 4,
      bTable: bTable * 4,
      bPanel: PANEL_N * 4,
      bStride: ldt * 4,
      c: (cBase + xi * cXi) * 4,
      mp,
      np: t.np,
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

/** Steps of k (tiles) per kernel call in the weight gradient, as in conv.ts. */
const K_CHUNK = 2048;

/**
 * The weight gradient of the same convolution, the adjoint of the forward's algorithm:
 *   dU_ξ[co, ci] = Σ_t dM_ξ[co, t] · V_ξ[ci, t],  dM = A dY Aᵀ per tile,  dW = Gᵀ dU G,
 * 16 products with k = the batch's tiles (computed as dU_ξᵀ = V_ξ · dM_ξᵀ: V's rows read in place,
 * dM packed in panels of 8 output channels by `winograd_grad_out`).
 */
export function conv2dGradWeightWinogradF32(
  rt: SimdRuntime,
  x: Float32Array,
  dy: Float32Array,
  s: Conv2dSpec,
  dw: Float32Array,
): void {
  const { n, cIn, cOut, hOut, wOut } = s;
  const t = tilesOf(s);
  const { th, tw, T, ldt } = t;
  if (T === 0) {
    dw.fill(0); // an empty batch
    return;
  }
  const cp = Math.ceil(cOut / PANEL_N) * PANEL_N;
  const np = cp / PANEL_N;
  const mp = Math.ceil(cIn / PANEL_M);
  const panel = T * PANEL_N; // floats between dM's panels of 8 channels
  const dmXi = np * panel;
  const cXi = mp * PANEL_M * cp;
  // Memory (floats): padded x, V, dY on the tiles' grid, dM, dUᵀ, tables, scratch, staging.
  const xBase = 0;
  const vBase = up4(xBase + cIn * t.grid.ldb);
  const dyBase = up4(vBase + XI * t.vXi);
  const dmBase = up4(dyBase + n * cp * 4 * th * tw);
  const cBase = up4(dmBase + XI * dmXi);
  const aTable = up4(cBase + XI * cXi);
  const bTable = up4(aTable + mp * PANEL_M);
  const scratch = up4(bTable + K_CHUNK);
  const stage = up4(scratch + 256);
  const { mem, ints } = rt.view(stage + Math.max(x.length, dy.length));
  transformInput(rt, x, s, t, mem, xBase, vBase, stage);
  // dY as [img][cp][2th][2tw], zeros past the image and past cOut
  mem.fill(0, dyBase, dmBase);
  mem.set(dy, stage);
  rt.copyRows(
    stage * 4,
    dyBase * 4,
    wOut,
    n,
    cOut * hOut * wOut * 4,
    cp * 4 * th * tw * 4,
    cOut,
    hOut * wOut * 4,
    4 * th * tw * 4,
    hOut,
    wOut * 4,
    2 * tw * 4,
  );
  rt.winogradGradOut(dyBase * 4, dmBase * 4, cp, n, th, tw, dmXi * 4, panel * 4, scratch * 4);
  for (let xi = 0; xi < XI; xi++) {
    for (let k0 = 0; k0 < T; k0 += K_CHUNK) {
      const len = Math.min(K_CHUNK, T - k0);
      // rows of A: V_ξ[ci] from tile k0 (rows past cIn repeat the last one; dropped)
      for (let r = 0; r < mp * PANEL_M; r++) {
        ints[aTable + r] = (vBase + xi * t.vXi + Math.min(r, cIn - 1) * ldt + k0) * 4;
      }
      for (let p = 0; p < len; p++)
        ints[bTable + p] = (dmBase + xi * dmXi + (k0 + p) * PANEL_N) * 4;
      rt.run({
        aTable: aTable * 4,
        aStep: 4,
        bTable: bTable * 4,
        bPanel: panel * 4,
        bStride: PANEL_N * 4,
        c: (cBase + xi * cXi) * 4,
        mp,
        np,
        k: len,
        ldc: cp,
        accumulate: k0 > 0,
      });
    }
  }
  // dW[co, ci] = Gᵀ dU G, dU[ξ] = C_ξ[ci, co]; Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1]
  const r = new Float64Array(12);
  for (let co = 0; co < cOut; co++) {
    for (let ci = 0; ci < cIn; ci++) {
      const at = cBase + ci * cp + co;
      // r = Gᵀ dU (3×4)
      for (let j = 0; j < 4; j++) {
        const u0 = mem[at + j * cXi]!;
        const u1 = mem[at + (4 + j) * cXi]!;
        const u2 = mem[at + (8 + j) * cXi]!;
        const u3 = mem[at + (12 + j) * cXi]!;
        r[j] = u0 + (u1 + u2) / 2;
        r[4 + j] = (u1 - u2) / 2;
        r[8 + j] = (u1 + u2) / 2 + u3;
      }
      // dW = r G (3×3)
      const o = (co * cIn + ci) * 9;
      for (let i = 0; i < 3; i++) {
        const r0 = r[4 * i]!;
        const r1 = r[4 * i + 1]!;
        const r2 = r[4 * i + 2]!;
        const r3 = r[4 * i + 3]!;
        dw[o + 3 * i] = r0 + (r1 + r2) / 2;
        dw[o + 3 * i + 1] = (r1 - r2) / 2;
        dw[o + 3 * i + 2] = (r1 + r2) / 2 + r3;
      }
    }
  }
}
