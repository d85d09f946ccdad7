/**
 * WGSL ports of attentionKernel and attentionBackwardKernel in backends/cpu/fused.ts, as
 * FlashAttention kernels (Dao et al. 2022; the backward as FlashAttention-2, Dao 2023): tiles of
 * BK rows of k and v (or of q and dOut) are staged in workgroup memory and streamed past rows
 * held in registers, so no lq × lk matrix exists anywhere.
 *
 * Each row (a query row, or a key row in the dk/dv kernel) belongs to G consecutive threads
 * ("lanes"); lane g holds the vec4 columns g, g + G, g + 2G, ... of the row's vectors, so a
 * thread keeps at most REG_VEC4 vec4 registers whatever d and dv are. Per staged row a lane
 * computes its partial dot products; with G > 1 the tile's partials are summed through workgroup
 * memory in a fixed order, so every lane of a row sees the same scores. The loops over a tile
 * run to the number of rows staged (a run-time bound, and no per-thread array of scores): with
 * constant bounds llvmpipe unrolled them and took 10–30 s per pipeline (docs/perf.md).
 *
 *  - forward: per query row the online softmax, one key at a time (running max m and sum l; the
 *    output is rescaled by e^{m_old − m_new} when the max moves, about log lk times per row);
 *    out = o / l and lse = m + log l at the end.
 *  - dq (and D): D = rowsum(dOut ⊙ out) first (written for the dk/dv kernel), then per key
 *    P = e^{s − lse}, dS = P (dOut·v − D), dq += dS k; dq·scale at the end.
 *  - dk, dv: per key row, streaming query rows: dv += P dOut, dk += dS q; dk·scale at the end.
 *
 * exp and log are m_exp and m_log (math.wgsl.ts). Rows past the end read zeros and write nothing.
 */
import type { AttentionSpec } from '../../backend.js';
import { declareBuffers, kernel, type LaunchContext } from './kernel.js';
import { mathWgsl } from './math.wgsl.js';
import type { GpuBuf } from './pool.js';
import { type Kernel, MAX_GROUPS } from './runtime.js';
import { paramFields } from './params.js';

/** Threads per workgroup. */
const NT = 128;
/** Most vec4 registers a thread may hold for its row vectors (q, o, ... slices). */
const REG_VEC4 = 32;
/** Largest tile of streamed rows. */
const MAX_BK = 32;
/** A finite stand-in for −∞ (WGSL compilers may assume finite arithmetic). */
const NEG = '-3.0e38';

type Pass = 'fwd' | 'dq' | 'dkdv';

/** The specialization of one pass: lanes per row, vec4 per lane, tile rows. */
export interface AttentionConfig {
  readonly lanes: number;
  /** vec4 per lane of the d-wide and dv-wide vectors. */
  readonly ds: number;
  readonly vs: number;
  /** Rows streamed per tile. */
  readonly bk: number;
  /** Rows per workgroup (NT / lanes). */
  readonly rows: number;
}

/** vec4 registers of a pass: its row vectors and accumulators. */
function registers(pass: Pass, ds: number, vs: number): number {
  if (pass === 'fwd') return ds + vs; // q, o
  if (pass === 'dq') return 2 * ds + vs; // q, dq, dOut
  return 2 * ds + 2 * vs; // k, dk, v, dv
}

/** Workgroup memory of a pass in bytes. */
function sharedBytes(pass: Pass, c: Omit<AttentionConfig, 'rows'> & { rows: number }): number {
  const staged = c.bk * c.lanes * (c.ds + c.vs) * 16;
  const exchange = c.lanes > 1 ? c.rows * (pass === 'fwd' ? 1 : 2) * c.bk * c.lanes * 4 : 0;
  const stats = pass === 'dkdv' ? 2 * c.bk * 4 : 0;
  return staged + exchange + stats;
}

/** Lanes per row so the registers fit, then the deepest tile that fits `maxBytes`. */
export function pickAttentionConfig(
  pass: Pass,
  d: number,
  dv: number,
  maxBytes: number,
): AttentionConfig {
  const d4 = Math.ceil(d / 4);
  const v4 = Math.ceil(dv / 4);
  let lanes = 1;
  while (lanes < 32 && registers(pass, Math.ceil(d4 / lanes), Math.ceil(v4 / lanes)) > REG_VEC4) {
    lanes *= 2;
  }
  const ds = Math.ceil(d4 / lanes);
  const vs = Math.ceil(v4 / lanes);
  const rows = NT / lanes;
  let bk = MAX_BK;
  while (bk > 1 && sharedBytes(pass, { lanes, ds, vs, bk, rows }) > maxBytes) bk /= 2;
  const bytes = sharedBytes(pass, { lanes, ds, vs, bk, rows });
  if (bytes > maxBytes) {
    throw new Error(
      `webgpu attention: heads of d=${d}, dv=${dv} need ${bytes} bytes of workgroup memory ` +
        `(the device has ${maxBytes})`,
    );
  }
  return { lanes, ds, vs, bk, rows };
}

const PARAMS = paramFields({
  lq: 'u32',
  lk: 'u32',
  d: 'u32',
  dv: 'u32',
  scale: 'f32',
  /** First slice of this dispatch (more than 65535 slices take several). */
  b0: 'u32',
});

/** Declarations shared by the three passes: constants and the staged tiles. */
function prelude(c: AttentionConfig, extra: string): string {
  const { lanes, ds, vs, bk, rows } = c;
  return `${mathWgsl(['m_exp', 'm_log'])}
const G = ${lanes}u;
const DS = ${ds}u;
const VS = ${vs}u;
const BK = ${bk}u;
const BQ = ${rows}u;
const KW = ${lanes * ds}u;
const VW = ${lanes * vs}u;
var<workgroup> As: array<vec4<f32>, ${bk * lanes * ds}>;
var<workgroup> Bs: array<vec4<f32>, ${bk * lanes * vs}>;
${extra}
// Stages rows r0.. of src ([rowsTotal, width] at base) into dst (BK rows of W vec4), zero-padded.
${stageFn('a', 'KW')}
${stageFn('b', 'VW')}`;
}

/**
 * WGSL `stage_a` / `stage_b`: all threads of the workgroup stage rows of srcA / srcB into the
 * tile As / Bs, BK rows of `vec4s` (KW / VW) vec4 each.
 */
function stageFn(ab: 'a' | 'b', vec4s: 'KW' | 'VW'): string {
  const AB = ab.toUpperCase();
  return `fn stage_${ab}(r0: u32, rowsTotal: u32, width: u32, base: u32, li: u32) {
  for (var e = li; e < BK * ${vec4s} * 4u; e += ${NT}u) {
    let j = e / (${vec4s} * 4u);
    let c = e % (${vec4s} * 4u);
    var val = 0.0;
    if (r0 + j < rowsTotal && c < width) { val = src${AB}[base + (r0 + j) * width + c]; }
    ${AB}s[j * ${vec4s} + (c >> 2u)][c & 3u] = val;
  }
}`;
}

/** Statements loading `n` vec4 of this lane's slice of a row into `name` (zero past width). */
function loadSlice(name: string, n: string, src: string, base: string, width: string): string {
  return `  var ${name}: array<vec4<f32>, ${n}>;
  for (var i = 0u; i < ${n}; i++) {
    let c = (g + G * i) * 4u;
    var t = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) { if (live && c + e < ${width}) { t[e] = ${src}[${base} + c + e]; } }
    ${name}[i] = t;
  }`;
}

/** Statements writing `scale · name` (n vec4 of this lane's slice) to dst, inside width. */
function storeSlice(name: string, n: string, dst: string, base: string, width: string): string {
  return `  if (live) {
    for (var i = 0u; i < ${n}; i++) {
      let c = (g + G * i) * 4u;
      for (var e = 0u; e < 4u; e++) { if (c + e < ${width}) { ${dst}[${base} + c + e] = ${name}[i][e]; } }
    }
  }`;
}

interface Dot {
  /** Name of the score in the consuming statements. */
  readonly name: string;
  /** This lane's slice of the row vector (`n` vec4) and the staged tile it meets (`w` per row). */
  readonly vec: string;
  readonly n: string;
  readonly tile: string;
  readonly w: string;
}

/**
 * The loop over the streamed rows (keys for the forward and dq passes, queries for dk/dv) of
 * length `len`, BK at a time in `idx`: the tile's rows of srcA and srcB staged (then `stageMore`,
 * lines of further loads), and overTile over the rows staged.
 */
function overStagedTiles(
  c: AttentionConfig,
  idx: string,
  len: string,
  dots: readonly Dot[],
  consume: string,
  stageMore = '',
): string {
  return `  for (var ${idx} = 0u; ${idx} < ${len}; ${idx} += BK) {
    stage_a(${idx}, ${len}, p_d(), b * ${len} * p_d(), li);
    stage_b(${idx}, ${len}, p_dv(), b * ${len} * p_dv(), li);
${stageMore}    workgroupBarrier();
${overTile(c, `min(BK, ${len} - ${idx})`, dots, consume)}
    workgroupBarrier();
  }`;
}

/**
 * For each of the `count` staged rows j, the dot products `dots` of the thread's row with row j,
 * then `consume` (which sees them by name, and j). One lane per row: the dots are computed in
 * the loop. Several: every lane's partial dots of the tile go through Xs first (slot k of a row
 * for dots[k]), and each lane sums a row's partials in the same order, so all lanes of a row
 * see the same values. The loop bound is the number of rows actually staged.
 */
function overTile(
  c: AttentionConfig,
  count: string,
  dots: readonly Dot[],
  consume: string,
): string {
  const partial = (d: Dot) => `      var a_${d.name} = vec4<f32>(0.0);
      for (var i = 0u; i < ${d.n}; i++) {
        a_${d.name} = fma(${d.vec}[i], ${d.tile}[j * ${d.w} + g + G * i], a_${d.name});
      }`;
  const hsum = (d: Dot) => `(a_${d.name}.x + a_${d.name}.y) + (a_${d.name}.z + a_${d.name}.w)`;
  if (c.lanes === 1) {
    return `    for (var j = 0u; j < ${count}; j++) {
${dots.map((d) => `${partial(d)}\n      let ${d.name} = ${hsum(d)};`).join('\n')}
${consume}
    }`;
  }
  const slot = (k: number, lane: string) =>
    `Xs[((rl * ${dots.length}u + ${k}u) * BK + j) * G + ${lane}]`;
  return `    for (var j = 0u; j < ${count}; j++) {
${dots.map((d, k) => `${partial(d)}\n      ${slot(k, 'g')} = ${hsum(d)};`).join('\n')}
    }
    workgroupBarrier();
    for (var j = 0u; j < ${count}; j++) {
${dots
  .map(
    (d, k) => `      var ${d.name} = 0.0;
      for (var h = 0u; h < G; h++) { ${d.name} += ${slot(k, 'h')}; }`,
  )
  .join('\n')}
${consume}
    }`;
}

function xsDecl(c: AttentionConfig, slots: number): string {
  return c.lanes > 1 ? `var<workgroup> Xs: array<f32, ${c.rows * slots * c.bk * c.lanes}>;` : '';
}

const ENTRY = `@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wg.y + p_b0();
  let rl = li / G;
  let g = li % G;`;

function key(pass: Pass, c: AttentionConfig): string {
  return `attention-${pass}/${c.lanes}x${c.ds}x${c.vs}/${c.bk}`;
}

export function attentionKernel(c: AttentionConfig): Kernel {
  const dots = [{ name: 's', vec: 'q', n: 'DS', tile: 'As', w: 'KW' }];
  // Online softmax, one key at a time: the running max only moves ~log(lk) times per row.
  const consume = `      let z = p_scale() * s;
      if (z > m) {
        let a = m_exp(m - z);
        l *= a;
        for (var i = 0u; i < VS; i++) { o[i] *= a; }
        m = z;
      }
      let p = m_exp(z - m);
      l += p;
      for (var i = 0u; i < VS; i++) { o[i] = fma(vec4<f32>(p), Bs[j * VW + g + G * i], o[i]); }`;
  return kernel(key('fwd', c), () => ({
    buffers: declareBuffers('f32', ['srcQ', 'srcA', 'srcB'], ['out', 'lse']),
    params: PARAMS,
    body: `${prelude(c, xsDecl(c, 1))}
${ENTRY}
  let row = wg.x * BQ + rl;
  let live = row < p_lq();
${loadSlice('q', 'DS', 'srcQ', '(b * p_lq() + row) * p_d()', 'p_d()')}
  var o: array<vec4<f32>, VS>;
  for (var i = 0u; i < VS; i++) { o[i] = vec4<f32>(0.0); }
  var m = ${NEG};
  var l = 0.0;
${overStagedTiles(c, 'j0', 'p_lk()', dots, consume)}
  for (var i = 0u; i < VS; i++) { o[i] /= l; }
${storeSlice('o', 'VS', 'out', '(b * p_lq() + row) * p_dv()', 'p_dv()')}
  if (live && g == 0u) { lse[b * p_lq() + row] = m + m_log(l); }
}`,
  }));
}

/** Sums `name` over the lanes of each row through Xs (nothing with one lane). */
function laneSum(c: AttentionConfig, name: string): string {
  if (c.lanes === 1) return '';
  return `  Xs[rl * G + g] = ${name};
  workgroupBarrier();
  ${name} = 0.0;
  for (var h = 0u; h < G; h++) { ${name} += Xs[rl * G + h]; }
  workgroupBarrier();`;
}

/**
 * The backward passes' entry: this thread's row of `rows` (`live` while inside, `index` its row
 * in the batch), whose d-wide slice of `d[1]` is loaded into `d[0]` (DS vec4s) and dv-wide slice
 * of `dv[1]` into `dv[0]` (VS vec4s).
 */
function enterRow(
  rows: string,
  index: string,
  d: readonly [string, string],
  dv: readonly [string, string],
): string {
  return `${ENTRY}
  let row = wg.x * BQ + rl;
  let live = row < ${rows};
  let ${index} = b * ${rows} + row;
${loadSlice(d[0], 'DS', d[1], `${index} * p_d()`, 'p_d()')}
${loadSlice(dv[0], 'VS', dv[1], `${index} * p_dv()`, 'p_dv()')}`;
}

export function attentionDqKernel(c: AttentionConfig): Kernel {
  const dots = [
    { name: 's', vec: 'q', n: 'DS', tile: 'As', w: 'KW' },
    { name: 'dp', vec: 'go', n: 'VS', tile: 'Bs', w: 'VW' },
  ];
  const consume = `      let ds = m_exp(p_scale() * s - l) * (dp - dd);
      for (var i = 0u; i < DS; i++) { acc[i] = fma(vec4<f32>(ds), As[j * KW + g + G * i], acc[i]); }`;
  return kernel(key('dq', c), () => ({
    buffers: declareBuffers('f32', ['srcQ', 'srcA', 'srcB', 'srcO', 'srcG', 'lse'], ['dq', 'dsum']),
    params: PARAMS,
    body: `${prelude(c, xsDecl(c, 2))}
${enterRow('p_lq()', 'qrow', ['q', 'srcQ'], ['go', 'srcG'])}
  // D = dOut·out (written for the dk/dv kernel).
  var dacc = vec4<f32>(0.0);
  for (var i = 0u; i < VS; i++) {
    let c = (g + G * i) * 4u;
    var t = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) { if (live && c + e < p_dv()) { t[e] = srcO[qrow * p_dv() + c + e]; } }
    dacc = fma(go[i], t, dacc);
  }
  var dd = (dacc.x + dacc.y) + (dacc.z + dacc.w);
${laneSum(c, 'dd')}
  if (live && g == 0u) { dsum[qrow] = dd; }
  var l = 0.0;
  if (live) { l = lse[qrow]; }
  var acc: array<vec4<f32>, DS>;
  for (var i = 0u; i < DS; i++) { acc[i] = vec4<f32>(0.0); }
${overStagedTiles(c, 'j0', 'p_lk()', dots, consume)}
  for (var i = 0u; i < DS; i++) { acc[i] *= p_scale(); }
${storeSlice('acc', 'DS', 'dq', 'qrow * p_d()', 'p_d()')}
}`,
  }));
}

export function attentionDkvKernel(c: AttentionConfig): Kernel {
  const stats = `var<workgroup> Ls: array<f32, ${c.bk}>;
var<workgroup> Dsh: array<f32, ${c.bk}>;
${xsDecl(c, 2)}`;
  const dots = [
    { name: 's', vec: 'kk', n: 'DS', tile: 'As', w: 'KW' },
    { name: 'dp', vec: 'vv', n: 'VS', tile: 'Bs', w: 'VW' },
  ];
  const consume = `      let p = m_exp(p_scale() * s - Ls[j]);
      let ds = p * (dp - Dsh[j]);
      for (var i = 0u; i < VS; i++) { gv[i] = fma(vec4<f32>(p), Bs[j * VW + g + G * i], gv[i]); }
      for (var i = 0u; i < DS; i++) { gk[i] = fma(vec4<f32>(ds), As[j * KW + g + G * i], gk[i]); }`;
  // The staged query rows' logsumexp and D, beside their q and dOut.
  const statsLoad = `    if (li < BK && i0 + li < p_lq()) {
      Ls[li] = lse[b * p_lq() + i0 + li];
      Dsh[li] = dsum[b * p_lq() + i0 + li];
    }
`;
  return kernel(key('dkdv', c), () => ({
    buffers: declareBuffers('f32', ['srcA', 'srcK', 'srcV', 'srcB', 'lse', 'dsum'], ['dk', 'dv']),
    params: PARAMS,
    body: `${prelude(c, stats)}
${enterRow('p_lk()', 'krow', ['kk', 'srcK'], ['vv', 'srcV'])}
  var gk: array<vec4<f32>, DS>;
  for (var i = 0u; i < DS; i++) { gk[i] = vec4<f32>(0.0); }
  var gv: array<vec4<f32>, VS>;
  for (var i = 0u; i < VS; i++) { gv[i] = vec4<f32>(0.0); }
${overStagedTiles(c, 'i0', 'p_lq()', dots, consume, statsLoad)}
  for (var i = 0u; i < DS; i++) { gk[i] *= p_scale(); }
${storeSlice('gk', 'DS', 'dk', 'krow * p_d()', 'p_d()')}
${storeSlice('gv', 'VS', 'dv', 'krow * p_dv()', 'p_dv()')}
}`,
  }));
}

function params(spec: AttentionSpec, b0: number) {
  const { lq, lk, d, dv, scale } = spec;
  return { lq, lk, d, dv, scale, b0 };
}

/** Records `rowsTotal` rows per slice in workgroups of c.rows, slices in chunks of 65535. */
function dispatchRows(
  ctx: LaunchContext,
  k: Kernel,
  bufs: readonly GpuBuf[],
  spec: AttentionSpec,
  c: AttentionConfig,
  rowsTotal: number,
): void {
  const x = Math.ceil(rowsTotal / c.rows);
  if (x > MAX_GROUPS) throw new Error(`webgpu attention: ${rowsTotal} rows exceed the grid`);
  for (let b0 = 0; b0 < spec.batch; b0 += MAX_GROUPS) {
    const y = Math.min(MAX_GROUPS, spec.batch - b0);
    ctx.runtime.dispatch(k, bufs, params(spec, b0), [x, y, 1]);
  }
}

function maxBytes(ctx: LaunchContext): number {
  return ctx.runtime.device.limits.maxComputeWorkgroupStorageSize;
}

export function launchAttention(
  ctx: LaunchContext,
  q: GpuBuf,
  k: GpuBuf,
  v: GpuBuf,
  out: { out: GpuBuf; lse: GpuBuf },
  spec: AttentionSpec,
): void {
  if (spec.batch * spec.lq === 0) return;
  const c = pickAttentionConfig('fwd', spec.d, spec.dv, maxBytes(ctx));
  dispatchRows(ctx, attentionKernel(c), [q, k, v, out.out, out.lse], spec, c, spec.lq);
}

export function launchAttentionBackward(
  ctx: LaunchContext,
  ins: { q: GpuBuf; k: GpuBuf; v: GpuBuf; out: GpuBuf; lse: GpuBuf; dOut: GpuBuf },
  grads: { dq: GpuBuf; dk: GpuBuf; dv: GpuBuf },
  spec: AttentionSpec,
): void {
  if (spec.batch * spec.lq * spec.lk === 0) return;
  const dsum = ctx.scratch(spec.batch * spec.lq);
  const cq = pickAttentionConfig('dq', spec.d, spec.dv, maxBytes(ctx));
  const bq = [ins.q, ins.k, ins.v, ins.out, ins.dOut, ins.lse, grads.dq, dsum];
  dispatchRows(ctx, attentionDqKernel(cq), bq, spec, cq, spec.lq);
  const ck = pickAttentionConfig('dkdv', spec.d, spec.dv, maxBytes(ctx));
  const bk = [ins.q, ins.k, ins.v, ins.dOut, ins.lse, dsum, grads.dk, grads.dv];
  dispatchRows(ctx, attentionDkvKernel(ck), bk, spec, ck, spec.lk);
  ctx.release(dsum);
}
