/**
 * The tiled GEMM template behind matmul and the three convolutions (WGSL port of `gemm` in
 * backends/cpu/matmul.ts; the convolutions are implicit GEMMs whose loaders read the input in
 * place instead of through an im2col buffer).
 *
 * A workgroup computes a BM×BN block of C = A·B over its K range: per step it stages a BK-deep
 * slice of A and B in workgroup memory (as vec4 rows padded by one vec4), then each of (BM/TM)·(BN/TN) threads
 * accumulates a TM×TN register block with vec4 FMAs. The next slice is fetched into registers
 * while the current one is used. A thread's rows and columns are groups of 4 spaced BM/TM·4
 * (BN/TN·4) apart, so neighbouring threads read neighbouring vec4s of workgroup memory (no bank
 * conflicts) and write neighbouring outputs. Which index of A (m or k) and of B (n or k) is
 * contiguous in memory picks the load mapping, so global reads are coalesced either way.
 *
 * grid: x = ⌈N/BN⌉, y = ⌈M/BM⌉, z = batch · splits. Split-K (splits > 1) gives each z its own
 * K range and output slice; the caller sums the slices (deterministically, with reduce).
 */
import { type BufferDecl, kernel } from './kernel.js';
import { type ParamField, paramFields } from './params.js';
import type { GpuBuf } from './pool.js';
import { type Kernel, MAX_GROUPS, type Runtime } from './runtime.js';

export interface GemmTile {
  readonly bm: number;
  readonly bn: number;
  readonly bk: number;
  readonly tm: number;
  readonly tn: number;
}

/** Big shapes: 128×128 tile, 8×8 per thread, 256 threads, K steps of 16. */
export const TILE_L: GemmTile = { bm: 128, bn: 128, bk: 16, tm: 8, tn: 8 };
/** Medium shapes: 64×64, 4×4 per thread, 256 threads. */
export const TILE_M: GemmTile = { bm: 64, bn: 64, bk: 8, tm: 4, tn: 4 };
/** Small and odd shapes: 32×32, 4×4 per thread, 64 threads. */
export const TILE_S: GemmTile = { bm: 32, bn: 32, bk: 8, tm: 4, tn: 4 };

/** Workgroup memory of a tile: A and B slices, rows padded by one vec4. */
export function tileBytes(t: GemmTile): number {
  return t.bk * (t.bm / 4 + 1) * 16 + t.bk * (t.bn / 4 + 1) * 16;
}

/**
 * The largest tile that fits the device's workgroup memory, keeps most of its work useful (≥ 70% of the tile grid inside M×N) and
 * still gives `minGroups` workgroups, else the small tile.
 */
export function pickTile(
  m: number,
  n: number,
  batch: number,
  maxWorkgroupBytes = Infinity,
  minGroups = 96,
): GemmTile {
  for (const t of [TILE_L, TILE_M]) {
    if (tileBytes(t) > maxWorkgroupBytes) continue;
    const tm = Math.ceil(m / t.bm);
    const tn = Math.ceil(n / t.bn);
    const util = (m * n) / (tm * t.bm * tn * t.bn);
    if (tm * tn * batch >= minGroups && util >= 0.7) return t;
  }
  return TILE_S;
}

export interface GemmSpec {
  /** Unique name of the specialization (loaders, tile, checks). */
  readonly name: string;
  readonly tile: GemmTile;
  /** Bounds checks on loads and stores (off when M, N and every K range divide the tile). */
  readonly checked: boolean;
  /** Input buffers, then the output named C. */
  readonly buffers: readonly BufferDecl[];
  readonly params: readonly ParamField[];
  /** Contiguous index of A in memory ('k': rows of A are contiguous) and of B. */
  readonly aMajor: 'm' | 'k';
  readonly bMajor: 'n' | 'k';
  /** WGSL functions used by the loaders. */
  readonly helpers?: string;
  /** Statements run once per workgroup; may use zb (batch index) and zs (split index). */
  readonly prelude?: string;
  /** With aMajor 'm', a thread's A column m is fixed: statements run once for it. */
  readonly setupA?: (m: string) => string;
  /** With bMajor 'n', a thread's B column n is fixed: statements run once for it. */
  readonly setupB?: (n: string) => string;
  /** f32 expression of A[m, k] (m < M and k < kEnd guaranteed when checked). */
  readonly loadA: (m: string, k: string) => string;
  readonly loadB: (k: string, n: string) => string;
  /** C[m, n] is at C[rowOffset(m) + colOffset(n)]. */
  readonly rowOffset: (m: string) => string;
  readonly colOffset: (n: string) => string;
}

export const GEMM_PARAMS = paramFields({
  M: 'u32',
  N: 'u32',
  K: 'u32',
  kchunk: 'u32',
  splits: 'u32',
  /** First column tile of this dispatch (grids wider than 65535 tiles take several). */
  xbase: 'u32',
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

export function gemmKernel(spec: GemmSpec): Kernel {
  const { bm, bn, bk, tm, tn } = spec.tile;
  const tx = bn / tn;
  const ty = bm / tm;
  const nt = tx * ty;
  const la = (bm * bk) / nt;
  const lb = (bn * bk) / nt;
  const key = `gemm/${spec.name}/${bm}x${bn}x${bk}/${tm}x${tn}/${spec.checked ? 'c' : 'u'}`;
  return kernel(key, () => {
    const L: string[] = [];
    const ck = spec.checked;
    // Load mapping. m-major A: one fixed column m per thread; k-major: one fixed k per thread.
    if (spec.aMajor === 'm') {
      if (nt % bm !== 0) throw new Error(`gemm ${key}: ${nt} threads do not tile BM ${bm}`);
      L.push(`  let aml = lid % ${bm}u;`, `  let am = m0 + aml;`, `  let akl = lid / ${bm}u;`);
      if (spec.setupA) L.push(spec.setupA('am'));
    } else {
      if (nt % bk !== 0) throw new Error(`gemm ${key}: ${nt} threads do not tile BK ${bk}`);
      L.push(`  let akl = lid % ${bk}u;`, `  let aml = lid / ${bk}u;`);
    }
    if (spec.bMajor === 'n') {
      if (nt % bn !== 0) throw new Error(`gemm ${key}: ${nt} threads do not tile BN ${bn}`);
      L.push(`  let bnl = lid % ${bn}u;`, `  let bn = n0 + bnl;`, `  let bkl = lid / ${bn}u;`);
      if (spec.setupB) L.push(spec.setupB('bn'));
    } else {
      L.push(`  let bkl = lid % ${bk}u;`, `  let bnl = lid / ${bk}u;`);
    }
    // (m, k) of A load r and (k, n) of B load r, local to the tile.
    const aIdx = (r: number): [string, string] =>
      spec.aMajor === 'm'
        ? ['aml', `(akl + ${(r * nt) / bm}u)`]
        : [`(aml + ${(r * nt) / bk}u)`, 'akl'];
    const bIdx = (r: number): [string, string] =>
      spec.bMajor === 'n'
        ? [`(bkl + ${(r * nt) / bn}u)`, 'bnl']
        : ['bkl', `(bnl + ${(r * nt) / bk}u)`];
    // Register `reg` = `value`, read at row or column `at` (< `size`) and depth k; checked
    // kernels read only inside the matrix and K slice, and leave 0 elsewhere.
    const loadRegister = (reg: string, at: string, size: string, k: string, value: string) =>
      ck
        ? [`    ${reg} = 0.0;`, `    if (${at} < ${size} && ${k} < kEnd) { ${reg} = ${value}; }`]
        : [`    ${reg} = ${value};`];
    const load = (kt: string): string[] => {
      const out: string[] = [];
      for (const r of range(la)) {
        const [ml, kl] = aIdx(r);
        const m = spec.aMajor === 'm' ? 'am' : `(m0 + ${ml})`;
        const k = `(${kt} + ${kl})`;
        out.push(...loadRegister(`ra${r}`, m, 'M', k, spec.loadA(m, k)));
      }
      for (const r of range(lb)) {
        const [kl, nl] = bIdx(r);
        const n = spec.bMajor === 'n' ? 'bn' : `(n0 + ${nl})`;
        const k = `(${kt} + ${kl})`;
        out.push(...loadRegister(`rb${r}`, n, 'N', k, spec.loadB(k, n)));
      }
      return out;
    };
    // Rows of the staged tiles are padded by one vec4, so k-major staging (consecutive threads
    // writing consecutive k) spreads over the banks instead of hitting one.
    const sa = bm / 4 + 1;
    const sb = bn / 4 + 1;
    const stage: string[] = [];
    for (const r of range(la)) {
      const [ml, kl] = aIdx(r);
      stage.push(`    As[${kl} * ${sa}u + (${ml} >> 2u)][${ml} & 3u] = ra${r};`);
    }
    for (const r of range(lb)) {
      const [kl, nl] = bIdx(r);
      stage.push(`    Bs[${kl} * ${sb}u + (${nl} >> 2u)][${nl} & 3u] = rb${r};`);
    }
    const rg = tm / 4;
    const cg = tn / 4;
    // One BK step: rg + cg vec4 reads of workgroup memory, then tm·tn/4 vec4 FMAs. A loop over
    // the BK steps (not unrolled here: drivers unroll it, and lavapipe compiles 8× faster).
    const fma: string[] = [];
    for (const i of range(rg)) fma.push(`      let a${i} = As[kk * ${sa}u + ty + ${i * ty}u];`);
    for (const j of range(cg)) fma.push(`      let b${j} = Bs[kk * ${sb}u + tx + ${j * tx}u];`);
    for (const i of range(rg)) {
      for (const c of range(4)) {
        for (const j of range(cg)) {
          const acc = `acc${i * 4 + c}_${j}`;
          fma.push(`      ${acc} = fma(vec4<f32>(a${i}[${c}]), b${j}, ${acc});`);
        }
      }
    }
    const store: string[] = [];
    for (const j of range(cg)) {
      store.push(`  let cn${j} = n0 + (tx + ${j * tx}u) * 4u;`);
      for (const e of range(4))
        store.push(`  let co${j}_${e} = ${spec.colOffset(`(cn${j} + ${e}u)`)};`);
    }
    for (const i of range(rg)) {
      for (const c of range(4)) {
        const m = `cm${i}_${c}`;
        store.push(`  let ${m} = m0 + (ty + ${i * ty}u) * 4u + ${c}u;`);
        store.push(`  let ro${i}_${c} = ${spec.rowOffset(m)};`);
        for (const j of range(cg)) {
          for (const e of range(4)) {
            const st = `C[ro${i}_${c} + co${j}_${e}] = acc${i * 4 + c}_${j}[${e}];`;
            store.push(ck ? `  if (${m} < M && cn${j} + ${e}u < N) { ${st} }` : `  ${st}`);
          }
        }
      }
    }
    const accDecl = range(tm)
      .flatMap((i) => range(cg).map((j) => `  var acc${i}_${j} = vec4<f32>(0.0);`))
      .join('\n');
    const regDecl = [...range(la).map((r) => `ra${r}`), ...range(lb).map((r) => `rb${r}`)]
      .map((v) => `  var ${v} = 0.0;`)
      .join('\n');
    const body = `${spec.helpers ?? ''}
var<workgroup> As: array<vec4<f32>, ${bk * sa}>;
var<workgroup> Bs: array<vec4<f32>, ${bk * sb}>;
@compute @workgroup_size(${nt})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = p_M();
  let N = p_N();
  let zb = wg.z / p_splits();
  let zs = wg.z % p_splits();
  let kBegin = zs * p_kchunk();
  let kEnd = min(kBegin + p_kchunk(), p_K());
  let m0 = wg.y * ${bm}u;
  let n0 = (wg.x + p_xbase()) * ${bn}u;
  let tx = lid % ${tx}u;
  let ty = lid / ${tx}u;
${spec.prelude ?? ''}
${L.join('\n')}
${accDecl}
${regDecl}
  {
${load('kBegin').join('\n')}
  }
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
${stage.join('\n')}
    workgroupBarrier();
    if (k0 + ${bk}u < kEnd) {
      let kn = k0 + ${bk}u;
${load('kn').join('\n')}
    }
    for (var kk = 0u; kk < ${bk}u; kk++) {
${fma.join('\n')}
    }
    workgroupBarrier();
  }
${store.join('\n')}
}`;
    return { buffers: spec.buffers, params: [...GEMM_PARAMS, ...spec.params], body };
  });
}

/** Whether a GEMM can skip bounds checks: every tile and K slice is full. */
export function isAligned(tile: GemmTile, m: number, n: number, k: number): boolean {
  return m % tile.bm === 0 && n % tile.bn === 0 && k > 0 && k % tile.bk === 0;
}

/**
 * Records a GEMM over M×N and `z` batch·split slices: grid x = ⌈N/BN⌉ column tiles (in chunks
 * of 65535, offset by p_xbase), y = ⌈M/BM⌉, z. `params` are the kernel's own parameters plus
 * M, N, K, kchunk and splits.
 */
export function dispatchGemm(
  rt: Runtime,
  k: Kernel,
  bufs: readonly GpuBuf[],
  params: Readonly<Record<string, number>>,
  tile: GemmTile,
  z: number,
): void {
  const m = params.M!;
  const n = params.N!;
  const tilesX = Math.ceil(n / tile.bn);
  const tilesY = Math.ceil(m / tile.bm);
  if (tilesY > MAX_GROUPS || z > MAX_GROUPS) {
    throw new Error(`webgpu ${k.key}: ${tilesY} row tiles × ${z} slices exceed ${MAX_GROUPS}`);
  }
  for (let xbase = 0; xbase < tilesX; xbase += MAX_GROUPS) {
    const x = Math.min(MAX_GROUPS, tilesX - xbase);
    rt.dispatch(k, bufs, { ...params, xbase }, [x, tilesY, z]);
  }
}

/**
 * How many K slices to compute separately so that small M×N with a long K still fills the GPU:
 * none unless the grid is under `minGroups` and each slice keeps at least `minK`.
 */
export function pickSplits(
  tile: GemmTile,
  m: number,
  n: number,
  batch: number,
  k: number,
  minGroups = 128,
  minK = 512,
): { splits: number; kchunk: number } {
  if (k === 0) return { splits: 1, kchunk: tile.bk };
  const groups = Math.ceil(m / tile.bm) * Math.ceil(n / tile.bn) * batch;
  let splits = 1;
  if (groups < minGroups && k >= 2 * minK) {
    splits = Math.min(Math.ceil(minGroups / groups), Math.floor(k / minK), 64);
  }
  const kchunk = Math.ceil(k / splits / tile.bk) * tile.bk;
  return { splits: Math.ceil(k / kchunk), kchunk };
}
