/**
 * WGSL ports of reduceKernel and argmaxKernel in backends/cpu/reduce.ts: x viewed as
 * [outer, size, inner], reduced over the middle axis. Two kernels:
 *  - rows (inner = 1, long rows): one workgroup per row segment, each thread strides over the
 *    segment, then a workgroup tree (or subgroup operations, when the device has them);
 *  - cols (inner > 1 or short rows): one thread per output (and segment), a loop over the axis,
 *    reading neighbouring `inner` elements with neighbouring threads.
 * Long axes with few outputs are split into segments whose partial results are reduced again by
 * the same code, so the order of additions is fixed: results are deterministic. NaN propagates
 * through max and min as in the CPU reference; argmax returns the first maximal index (a NaN
 * counts as maximal).
 */
import type { ReduceOp } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { declareBuffers, kernel, type LaunchContext, mainWgsl, WG, wgslType } from './kernel.js';
import { mathWgsl } from './math.wgsl.js';
import type { GpuBuf } from './pool.js';
import { grid1d, type Kernel } from './runtime.js';
import { paramFields } from './params.js';

/** Identity and combine of an op for a WGSL type. */
function opWgsl(op: ReduceOp, t: 'f32' | 'i32'): { init: string; combine: string } {
  if (op === 'sum') return { init: t === 'f32' ? '0.0' : '0', combine: 'a + b' };
  if (t === 'i32') {
    return {
      init: op === 'max' ? 'i32(-2147483648)' : '2147483647',
      combine: op === 'max' ? 'max(a, b)' : 'min(a, b)',
    };
  }
  const fn = op === 'max' ? 'max' : 'min';
  return {
    init: op === 'max' ? '-m_inf()' : 'm_inf()',
    combine: `select(select(${fn}(a, b), b, m_isnan(b)), a, m_isnan(a))`,
  };
}

function combineFn(op: ReduceOp, t: 'f32' | 'i32'): string {
  const { init, combine } = opWgsl(op, t);
  const math = t === 'f32' ? mathWgsl(['m_isnan', 'm_inf', 'm_nan']) : '';
  return `${math}
fn r_init() -> ${t} { return ${init}; }
fn r_combine(a: ${t}, b: ${t}) -> ${t} { return ${combine}; }`;
}

/** Subgroup reduction of `v` for the op (NaN made explicit for f32 max/min). */
function subgroupExpr(op: ReduceOp, t: 'f32' | 'i32'): string {
  if (op === 'sum') return 'subgroupAdd(v)';
  const f = op === 'max' ? 'subgroupMax(v)' : 'subgroupMin(v)';
  return t === 'f32' ? `select(${f}, m_nan(), subgroupAny(m_isnan(v)))` : f;
}

export function reduceRowsKernel(op: ReduceOp, dtype: DType, subgroups: boolean): Kernel {
  const t = wgslType(dtype);
  return kernel(`reduce-rows/${op}/${t}/${subgroups ? 'sg' : 'wg'}`, () => {
    const finish = subgroups
      ? `  let v = acc;
  let sv = ${subgroupExpr(op, t)};
  if (sgi == 0u) { sh[li / sgs] = sv; }
  workgroupBarrier();
  if (li == 0u) {
    var r = sh[0];
    for (var k = 1u; k < ${WG}u / sgs; k++) { r = r_combine(r, sh[k]); }
    out[g] = r;
  }`
      : `  sh[li] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { sh[li] = r_combine(sh[li], sh[li + s]); }
    workgroupBarrier();
  }
  if (li == 0u) { out[g] = sh[0]; }`;
    const sgArgs = subgroups
      ? ',\n        @builtin(subgroup_invocation_id) sgi: u32, @builtin(subgroup_size) sgs: u32'
      : '';
    return {
      enable: subgroups ? ['subgroups'] : [],
      buffers: declareBuffers(t, ['x'], ['out']),
      params: paramFields({ groups: 'u32', size: 'u32', segs: 'u32', seglen: 'u32' }),
      body: `${combineFn(op, t)}
var<workgroup> sh: array<${t}, ${WG}>;
${mainWgsl(sgArgs)}
  let g = wg.y * nwg.x + wg.x;
  if (g >= p_groups()) { return; }
  let o = g / p_segs();
  let start = (g % p_segs()) * p_seglen();
  let end = min(start + p_seglen(), p_size());
  let base = o * p_size();
  var acc = r_init();
  for (var j = start + li; j < end; j += ${WG}u) { acc = r_combine(acc, x[base + j]); }
${finish}
}`,
    };
  });
}

export function reduceColsKernel(op: ReduceOp, dtype: DType): Kernel {
  const t = wgslType(dtype);
  return kernel(`reduce-cols/${op}/${t}`, () => ({
    buffers: declareBuffers(t, ['x'], ['out']),
    params: paramFields({ n: 'u32', size: 'u32', inner: 'u32', segs: 'u32', seglen: 'u32' }),
    body: `${combineFn(op, t)}
${mainWgsl()}
  let t = (wg.y * nwg.x + wg.x) * ${WG}u + li;
  if (t >= p_n()) { return; }
  let inner = p_inner();
  let i = t % inner;
  let q = t / inner;
  let o = q / p_segs();
  let start = (q % p_segs()) * p_seglen();
  let end = min(start + p_seglen(), p_size());
  var p = (o * p_size() + start) * inner + i;
  var acc = r_init();
  for (var r = start; r < end; r++) { acc = r_combine(acc, x[p]); p += inner; }
  out[t] = acc;
}`,
  }));
}

/** Longest run one thread (cols) adds sequentially; longer axes are split into segments. */
const MAX_SEQ = 1024;

/** Records x[outer, size, inner] -> out[outer, inner], in one or more passes. */
export function launchReduce(
  ctx: LaunchContext,
  op: ReduceOp,
  dtype: DType,
  x: GpuBuf,
  out: GpuBuf,
  outer: number,
  size: number,
  inner: number,
): void {
  if (outer * inner === 0) return;
  const rows = inner === 1 && size > 64;
  let segs = 1;
  if (rows) {
    if (outer < 128 && size > 4096) segs = Math.min(Math.ceil(size / 2048), Math.ceil(256 / outer));
  } else {
    const outputs = outer * inner;
    if (size > 256 && outputs < 16384) {
      segs = Math.min(Math.ceil(size / 64), Math.ceil(16384 / outputs));
    }
    segs = Math.max(segs, Math.ceil(size / MAX_SEQ));
  }
  const seglen = Math.max(1, Math.ceil(size / segs));
  segs = Math.max(1, Math.ceil(size / seglen));
  const target = segs === 1 ? out : ctx.scratch(outer * segs * inner);
  if (rows) {
    const groups = outer * segs;
    ctx.runtime.dispatch(
      reduceRowsKernel(op, dtype, ctx.subgroups),
      [x, target],
      { groups, size, segs, seglen },
      grid1d(groups),
    );
  } else {
    const n = outer * segs * inner;
    ctx.runtime.dispatch(
      reduceColsKernel(op, dtype),
      [x, target],
      { n, size, inner, segs, seglen },
      grid1d(Math.ceil(n / WG)),
    );
  }
  if (segs > 1) {
    launchReduce(ctx, op, dtype, target, out, outer, segs, inner);
    ctx.release(target);
  }
}

/** Whether (vb, ib) beats (va, ia): larger, NaN over number, first index among equals. */
const ARG_BETTER = `fn a_better(va: T, ia: u32, vb: T, ib: u32) -> bool {
  let na = a_isnan(va);
  let nb = a_isnan(vb);
  if (na || nb) { return nb && (!na || ib < ia); }
  return vb > va || (vb == va && ib < ia);
}`;

function argPrelude(t: 'f32' | 'i32'): string {
  const isnan = t === 'f32' ? 'm_isnan(v)' : 'false';
  return `${t === 'f32' ? mathWgsl(['m_isnan', 'm_inf']) : ''}
alias T = ${t};
fn a_isnan(v: T) -> bool { return ${isnan}; }
fn a_init() -> T { return ${t === 'f32' ? '-m_inf()' : 'i32(-2147483648)'}; }
${ARG_BETTER}`;
}

export function argmaxRowsKernel(dtype: DType): Kernel {
  const t = wgslType(dtype);
  return kernel(`argmax-rows/${t}`, () => ({
    buffers: [
      { name: 'x', type: t, kind: 'read' },
      { name: 'out', type: 'i32', kind: 'write' },
    ],
    params: paramFields({ groups: 'u32', size: 'u32' }),
    body: `${argPrelude(t)}
var<workgroup> shv: array<T, ${WG}>;
var<workgroup> shi: array<u32, ${WG}>;
${mainWgsl()}
  let g = wg.y * nwg.x + wg.x;
  if (g >= p_groups()) { return; }
  let base = g * p_size();
  var bv = a_init();
  var bi = 0xffffffffu;
  for (var j = li; j < p_size(); j += ${WG}u) {
    let v = x[base + j];
    if (a_better(bv, bi, v, j)) { bv = v; bi = j; }
  }
  shv[li] = bv;
  shi[li] = bi;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s && a_better(shv[li], shi[li], shv[li + s], shi[li + s])) {
      shv[li] = shv[li + s];
      shi[li] = shi[li + s];
    }
    workgroupBarrier();
  }
  if (li == 0u) { out[g] = select(i32(shi[0]), 0, shi[0] == 0xffffffffu); }
}`,
  }));
}

export function argmaxColsKernel(dtype: DType): Kernel {
  const t = wgslType(dtype);
  return kernel(`argmax-cols/${t}`, () => ({
    buffers: [
      { name: 'x', type: t, kind: 'read' },
      { name: 'out', type: 'i32', kind: 'write' },
    ],
    params: paramFields({ n: 'u32', size: 'u32', inner: 'u32' }),
    body: `${argPrelude(t)}
${mainWgsl()}
  let t = (wg.y * nwg.x + wg.x) * ${WG}u + li;
  if (t >= p_n()) { return; }
  let inner = p_inner();
  var p = (t / inner) * p_size() * inner + t % inner;
  var bv = a_init();
  var bi = 0xffffffffu;
  for (var r = 0u; r < p_size(); r++) {
    let v = x[p];
    if (a_better(bv, bi, v, r)) { bv = v; bi = r; }
    p += inner;
  }
  out[t] = select(i32(bi), 0, bi == 0xffffffffu);
}`,
  }));
}

export function launchArgmax(
  ctx: LaunchContext,
  dtype: DType,
  x: GpuBuf,
  out: GpuBuf,
  outer: number,
  size: number,
  inner: number,
): void {
  if (outer * inner === 0) return;
  if (inner === 1 && size > 64) {
    ctx.runtime.dispatch(argmaxRowsKernel(dtype), [x, out], { groups: outer, size }, grid1d(outer));
  } else {
    const n = outer * inner;
    ctx.runtime.dispatch(
      argmaxColsKernel(dtype),
      [x, out],
      { n, size, inner },
      grid1d(Math.ceil(n / WG)),
    );
  }
}

/**
 * WGSL helpers for kernels that reduce inside one workgroup of WG threads and need the result
 * in every thread: wg_sum (f32), wg_sum2 (vec2<f32>) and wg_max (f32, NaN-propagating; needs
 * m_isnan and m_nan). With subgroups each subgroup reduces first and the WG / subgroup_size
 * partials are summed by every thread; without, a tree in workgroup memory. Call them from
 * uniform control flow; `sg` passes (subgroup_invocation_id, subgroup_size), or vec2(0) without.
 */
export function workgroupReduceWgsl(subgroups: boolean): string {
  const tree = (t: string, name: string, combine: string): string => `
var<workgroup> red_${name}: array<${t}, ${WG}>;
fn wg_${name}(v: ${t}, li: u32, sg: vec2<u32>) -> ${t} {
  red_${name}[li] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { let a = red_${name}[li]; let b = red_${name}[li + s]; red_${name}[li] = ${combine}; }
    workgroupBarrier();
  }
  let r = red_${name}[0];
  workgroupBarrier();
  return r;
}`;
  const viaSubgroups = (t: string, name: string, sgOp: string, combine: string): string => `
var<workgroup> red_${name}: array<${t}, ${WG}>;
fn wg_${name}(v: ${t}, li: u32, sg: vec2<u32>) -> ${t} {
  let sv = ${sgOp};
  if (sg.x == 0u) { red_${name}[li / sg.y] = sv; }
  workgroupBarrier();
  var a = red_${name}[0];
  for (var k = 1u; k < ${WG}u / sg.y; k++) { let b = red_${name}[k]; a = ${combine}; }
  workgroupBarrier();
  return a;
}`;
  const maxCombine = 'select(select(max(a, b), b, m_isnan(b)), a, m_isnan(a))';
  if (!subgroups) {
    return [
      tree('f32', 'sum', 'a + b'),
      tree('vec2<f32>', 'sum2', 'a + b'),
      tree('f32', 'max', maxCombine),
    ].join('\n');
  }
  return [
    viaSubgroups('f32', 'sum', 'subgroupAdd(v)', 'a + b'),
    viaSubgroups('vec2<f32>', 'sum2', 'subgroupAdd(v)', 'a + b'),
    viaSubgroups(
      'f32',
      'max',
      'select(subgroupMax(v), m_nan(), subgroupAny(m_isnan(v)))',
      maxCombine,
    ),
  ].join('\n');
}

/** Entry-point arguments and the `sg` value for workgroupReduceWgsl. */
export function subgroupArgs(subgroups: boolean): { args: string; sg: string } {
  return subgroups
    ? {
        args: ',\n        @builtin(subgroup_invocation_id) sgi: u32, @builtin(subgroup_size) sgs: u32',
        sg: 'vec2<u32>(sgi, sgs)',
      }
    : { args: '', sg: 'vec2<u32>(0u)' };
}
