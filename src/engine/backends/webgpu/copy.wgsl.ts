/**
 * WGSL ports of the data-movement kernels in backends/cpu/copy.ts: stridedCopyKernel, padKernel,
 * concatKernel (one dispatch a part), gatherKernel and scatterAddKernel. One thread per output element. An index out of range cannot
 * throw inside a kernel as it does on the CPU: the thread writes 0 and sets bit 0 of the
 * backend's status word, and the next read() reports it as an error.
 */
import type { GatherSpec, PadSpec, StridedCopySpec } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { sizeOf } from '../../shape.js';
import {
  type BufferDecl,
  collapseAxes,
  compiledRank,
  declareBuffers,
  flatMain,
  kernel,
  MAX_RANK,
  scalarBits,
  stridedOffsets,
  WG,
  wgslType,
} from './kernel.js';
import type { GpuBuf } from './pool.js';
import { grid1d, type Kernel, type Runtime } from './runtime.js';
import { paramFields } from './params.js';

function flatGrid(n: number): [number, number, number] {
  return grid1d(Math.ceil(n / WG));
}

export function stridedCopyKernel(dtype: DType, rank: number): Kernel {
  rank = compiledRank(rank);
  const t = wgslType(dtype);
  return kernel(`strided-copy/${t}/${rank}`, () => ({
    buffers: declareBuffers(t, ['x'], ['out']),
    params: paramFields({
      n: 'u32',
      rank: 'u32',
      offset: 'u32',
      shape: { type: 'u32', count: rank },
      s0: { type: 'u32', count: rank },
    }),
    body: flatMain(`${stridedOffsets(rank, 1)}\n  out[i] = x[p_offset() + off0];`),
  }));
}

export function launchStridedCopy(
  rt: Runtime,
  dtype: DType,
  x: GpuBuf,
  out: GpuBuf,
  spec: StridedCopySpec,
): void {
  const n = sizeOf(spec.outShape);
  if (n === 0) return;
  const c = collapseAxes(spec.outShape, [spec.strides]);
  if (c.shape.length > MAX_RANK) {
    throw new Error(`webgpu stridedCopy: ${c.shape.length} axes after merging (max ${MAX_RANK})`);
  }
  rt.dispatch(
    stridedCopyKernel(dtype, c.shape.length),
    [x, out],
    { n, rank: c.shape.length, offset: spec.offset, shape: c.shape, s0: c.strides[0]! },
    flatGrid(n),
  );
}

export function padKernel(dtype: DType): Kernel {
  const t = wgslType(dtype);
  // c − before wraps past in[ax] when c < before, so one comparison checks both ends.
  const body = `  var rem = i;
  var src = 0u;
  var inside = true;
  for (var ax = i32(p_rank()) - 1; ax >= 0; ax--) {
    let a = u32(ax);
    let d = p_out(a);
    let ci = rem % d - p_before(a);
    rem = rem / d;
    inside = inside && ci < p_in(a);
    src += ci * p_instride(a);
  }
  out[i] = select(bitcast<${t}>(p_bits()), x[select(0u, src, inside)], inside);`;
  return kernel(`pad/${t}`, () => ({
    buffers: declareBuffers(t, ['x'], ['out']),
    params: paramFields({
      n: 'u32',
      rank: 'u32',
      bits: 'u32',
      out: { type: 'u32', count: MAX_RANK },
      in: { type: 'u32', count: MAX_RANK },
      before: { type: 'u32', count: MAX_RANK },
      instride: { type: 'u32', count: MAX_RANK },
    }),
    body: flatMain(body),
  }));
}

export function launchPad(rt: Runtime, dtype: DType, x: GpuBuf, out: GpuBuf, spec: PadSpec): void {
  const n = sizeOf(spec.outShape);
  if (n === 0) return;
  // Merge each unpadded axis into the axis before it (its extent and offset scale by d).
  const outD: number[] = [];
  const inD: number[] = [];
  const before: number[] = [];
  spec.inShape.forEach((d, ax) => {
    const unpadded = spec.outShape[ax] === d;
    const last = outD.length - 1;
    if (unpadded && last >= 0) {
      outD[last]! *= d;
      inD[last]! *= d;
      before[last]! *= d;
    } else {
      outD.push(spec.outShape[ax]!);
      inD.push(d);
      before.push(spec.before[ax]!);
    }
  });
  if (outD.length === 0) {
    outD.push(1);
    inD.push(1);
    before.push(0);
  }
  if (outD.length > MAX_RANK) {
    throw new Error(`webgpu pad: ${outD.length} padded axes (max ${MAX_RANK})`);
  }
  const instride: number[] = [];
  let acc = 1;
  for (let ax = inD.length - 1; ax >= 0; ax--) {
    instride[ax] = acc;
    acc *= inD[ax]!;
  }
  const bits = scalarBits(spec.value, dtype);
  rt.dispatch(
    padKernel(dtype),
    [x, out],
    { n, rank: outD.length, bits, out: outD, in: inD, before, instride },
    flatGrid(n),
  );
}

/** out[o · total + at + r] = x[o · length + r] for r < length: one part of a concat. */
export function concatPartKernel(dtype: DType): Kernel {
  const t = wgslType(dtype);
  return kernel(`concat-part/${t}`, () => ({
    buffers: declareBuffers(t, ['x'], ['out']),
    params: paramFields({ n: 'u32', length: 'u32', total: 'u32', at: 'u32' }),
    body: flatMain(`  let o = i / p_length();
  out[o * p_total() + p_at() + (i - o * p_length())] = x[i];`),
  }));
}

export function launchConcatPart(
  rt: Runtime,
  dtype: DType,
  x: GpuBuf,
  out: GpuBuf,
  part: { outer: number; length: number; total: number; at: number },
): void {
  const n = part.outer * part.length;
  if (n === 0) return;
  rt.dispatch(
    concatPartKernel(dtype),
    [x, out],
    { n, length: part.length, total: part.total, at: part.at },
    flatGrid(n),
  );
}

const gatherParams = paramFields({ n: 'u32', axis: 'u32', inner: 'u32', nidx: 'u32' });

/** Buffers of gather and scatter-add: the values, the int32 indices, the output, the status word. */
function indexedBuffers(values: string, t: string): BufferDecl[] {
  return [
    { name: values, type: t, kind: 'read' },
    { name: 'idx', type: 'i32', kind: 'read' },
    { name: 'out', type: t, kind: 'write' },
    { name: 'status', type: 'atomic<u32>', kind: 'write' },
  ];
}

export function gatherKernel(dtype: DType): Kernel {
  const t = wgslType(dtype);
  return kernel(`gather/${t}`, () => ({
    buffers: indexedBuffers('x', t),
    params: gatherParams,
    body: flatMain(`  let inner = p_inner();
  let r = i % inner;
  let q = i / inner;
  let k = q % p_nidx();
  let o = q / p_nidx();
  let v = idx[k];
  if (v < 0 || u32(v) >= p_axis()) {
    atomicOr(&status[0], 1u);
    out[i] = ${t}(0);
    return;
  }
  out[i] = x[(o * p_axis() + u32(v)) * inner + r];`),
  }));
}

/** Deterministic scatter-add: each output sums its sources in index order (no atomics). */
export function scatterAddKernel(dtype: DType): Kernel {
  const t = wgslType(dtype);
  return kernel(`scatter-add/${t}`, () => ({
    buffers: indexedBuffers('src', t),
    params: gatherParams,
    body: flatMain(`  let inner = p_inner();
  let r = i % inner;
  let q = i / inner;
  let v = i32(q % p_axis());
  let o = q / p_axis();
  let nidx = p_nidx();
  var acc = ${t}(0);
  var bad = false;
  var p = o * nidx * inner + r;
  for (var k = 0u; k < nidx; k++) {
    let w = idx[k];
    bad = bad || w < 0 || u32(w) >= p_axis();
    if (w == v) { acc += src[p]; }
    p += inner;
  }
  if (bad && i == 0u) { atomicOr(&status[0], 1u); }
  out[i] = acc;`),
  }));
}

/**
 * Records gather or scatter-add (`kernelOf`) over n outputs, nothing when n is 0; an index outside
 * the axis sets the runtime's status word.
 */
function dispatchIndexed(
  rt: Runtime,
  kernelOf: (dtype: DType) => Kernel,
  dtype: DType,
  bufs: readonly [values: GpuBuf, idx: GpuBuf, out: GpuBuf],
  spec: GatherSpec,
  n: number,
): void {
  if (n === 0) return;
  const params = { n, axis: spec.axisSize, inner: spec.inner, nidx: spec.numIndices };
  rt.dispatch(kernelOf(dtype), [...bufs, rt.status], params, flatGrid(n));
}

export function launchGather(
  rt: Runtime,
  dtype: DType,
  x: GpuBuf,
  idx: GpuBuf,
  out: GpuBuf,
  spec: GatherSpec,
): void {
  const n = spec.outer * spec.numIndices * spec.inner;
  dispatchIndexed(rt, gatherKernel, dtype, [x, idx, out], spec, n);
}

export function launchScatterAdd(
  rt: Runtime,
  dtype: DType,
  src: GpuBuf,
  idx: GpuBuf,
  out: GpuBuf,
  spec: GatherSpec,
): void {
  const n = spec.outer * spec.axisSize * spec.inner;
  dispatchIndexed(rt, scatterAddKernel, dtype, [src, idx, out], spec, n);
}
