/**
 * Kernel definition helpers shared by the *.wgsl.ts files: binding declarations generated from
 * one list, a memo so each specialization's WGSL is built once, and the flat-index entry point
 * used by the element-wise kernels.
 */
import type { DType } from '../../dtype.js';
import { mergeAxes } from '../../shape.js';
import { ParamLayout, type ParamField } from './params.js';
import type { BindingKind, Kernel } from './runtime.js';

export interface BufferDecl {
  readonly name: string;
  /** WGSL element type of the array (f32, i32, u32, atomic<u32>, vec4<f32>). */
  readonly type: string;
  readonly kind: BindingKind;
}

/**
 * The buffers of a kernel whose arrays share one element type, in binding order: the `read` ones,
 * then the `write` ones.
 */
export function declareBuffers(
  type: string,
  read: readonly string[],
  write: readonly string[],
): BufferDecl[] {
  return [
    ...read.map((name) => ({ name, type, kind: 'read' as const })),
    ...write.map((name) => ({ name, type, kind: 'write' as const })),
  ];
}

/** Threads per workgroup of the element-wise and copy kernels. */
export const WG = 256;

const memo = new Map<string, Kernel>();

/**
 * The kernel `key`, built by `make` the first time it is asked for. `make` returns the buffer
 * list, the parameter fields and the WGSL body (which defines `fn main` with @compute).
 */
export function kernel(
  key: string,
  make: () => {
    buffers: readonly BufferDecl[];
    params: readonly ParamField[];
    body: string;
    enable?: readonly string[];
  },
): Kernel {
  let k = memo.get(key);
  if (k === undefined) {
    const spec = make();
    const layout = new ParamLayout(spec.params);
    const decls = spec.buffers.map(
      (b, i) =>
        `@group(0) @binding(${i}) var<storage, ${b.kind === 'read' ? 'read' : 'read_write'}> ` +
        `${b.name}: array<${b.type}>;`,
    );
    const code = [
      ...(spec.enable ?? []).map((e) => `enable ${e};`),
      ...decls,
      layout.wgsl(spec.buffers.length),
      spec.body,
    ].join('\n');
    k = { key, code, bindings: spec.buffers.map((b) => b.kind), params: layout };
    memo.set(key, k);
  }
  return k;
}

/** The bits of `value` stored as a dtype's scalar, as a u32 (read back with bitcast in WGSL). */
export function scalarBits(value: number, dtype: DType): number {
  const stored = dtype === 'int32' ? new Int32Array([value]) : new Float32Array([value]);
  return new Uint32Array(stored.buffer)[0]!;
}

/** The WGSL scalar type that stores a dtype (float64 never reaches a kernel). */
export function wgslType(dtype: DType): 'f32' | 'i32' {
  if (dtype === 'float64') throw new Error('webgpu: float64 reached a kernel');
  return dtype === 'int32' ? 'i32' : 'f32';
}

/**
 * The WGSL entry point of a kernel of WG threads a workgroup, up to its opening brace: `wg` (the
 * workgroup id), `nwg` (the grid) and `li` (the local index), then `extraArgs` (subgroup
 * builtins, each after a comma).
 */
export function mainWgsl(extraArgs = ''): string {
  return `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32${extraArgs}) {`;
}

/**
 * Entry point over a flat index `i` < p_n(), one thread per element, grid from grid1d().
 * `body` uses `i`.
 */
export function flatMain(body: string): string {
  return `${mainWgsl()}
  let i = (wg.y * nwg.x + wg.x) * ${WG}u + li;
  if (i >= p_n()) { return; }
${body}
}`;
}

/**
 * The strided kernels' iteration over fewer, longer axes (mergeAxes), so most broadcasts become
 * rank 1 or 2. Rank 0 becomes [1].
 */
export function collapseAxes(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  return mergeAxes(shape, strides, true);
}

/** Largest rank a strided kernel takes after collapsing (parameter slot space). */
export const MAX_RANK = 8;

/**
 * Rank a strided kernel is compiled for: 1 (contiguous or a single stride: the common fast path)
 * or MAX_RANK, a loop over the run-time rank p_rank() (one pipeline for every other shape).
 */
export function compiledRank(rank: number): number {
  return rank <= 1 ? 1 : MAX_RANK;
}

/**
 * WGSL that turns the flat output index `i` into one offset per input (`off0`, `off1`, ...)
 * through p_shape and p_s<j>. Compiled rank 1 is a multiply; otherwise a loop over p_rank().
 */
export function stridedOffsets(rank: number, inputs: number): string {
  const offs = Array.from({ length: inputs }, (_, j) => `  var off${j} = 0u;`).join('\n');
  if (rank === 1) {
    return (
      offs +
      '\n' +
      Array.from({ length: inputs }, (_, j) => `  off${j} = i * p_s${j}(0u);`).join('\n')
    );
  }
  const adds = Array.from({ length: inputs }, (_, j) => `    off${j} += c * p_s${j}(a);`).join(
    '\n',
  );
  return `${offs}
  var rem = i;
  for (var ax = i32(p_rank()) - 1; ax >= 0; ax--) {
    let a = u32(ax);
    let d = p_shape(a);
    let c = rem % d;
    rem = rem / d;
${adds}
  }`;
}

/** What the multi-pass launchers need from the backend. */
export interface LaunchContext {
  readonly runtime: import('./runtime.js').Runtime;
  /** Whether kernels may use subgroup operations. */
  readonly subgroups: boolean;
  /** A pooled scratch buffer of `elements` 4-byte elements. */
  scratch(elements: number): import('./pool.js').GpuBuf;
  /** Returns a scratch buffer (safe right after the dispatches that use it are recorded). */
  release(b: import('./pool.js').GpuBuf): void;
  /** A small constant int32 buffer, made by `make` once per key and kept (lookup tables). */
  constant(key: string, make: () => Int32Array): import('./pool.js').GpuBuf;
}
