/**
 * Between Module state dicts (or any named tensors) and safetensors bytes, without files: what a
 * browser needs to load weights it fetched or to offer trained weights for download.
 */
import { type Backend, type DType, tensor, type Tensor } from '../engine/index.js';
import type { LoadOptions, Module } from './module.js';
import {
  parseSafetensors,
  type SafetensorsFile,
  serializeSafetensors,
  type TensorToWrite,
} from './safetensors.js';

export interface TensorLoadOptions {
  /** Where the tensors go (default: the default backend). */
  backend?: Backend;
  /** Cast every floating-point tensor to this dtype (default: float32, float64 for F64 data). */
  dtype?: 'float32' | 'float64';
}

/**
 * Named tensors read back (from any backend) as safetensors entries: floating-point ones stored
 * as `dtype` (default: each tensor's own, F32 or F64), int32 ones as I32.
 */
export async function tensorsToWrite(
  tensors: Iterable<readonly [string, Tensor]>,
  dtype?: 'F32' | 'F16' | 'F64',
): Promise<TensorToWrite[]> {
  const entries: TensorToWrite[] = [];
  for (const [name, t] of tensors) {
    const data = await t.data();
    entries.push({ name, shape: t.shape, data, dtype: t.dtype === 'int32' ? 'I32' : dtype });
  }
  return entries;
}

/** The name of the first floating-point entry holding a NaN or an infinity; null if none. */
export function firstNonFinite(entries: readonly TensorToWrite[]): string | null {
  for (const e of entries) {
    if (e.data instanceof Int32Array) continue;
    for (let i = 0; i < e.data.length; i++) if (!Number.isFinite(e.data[i]!)) return e.name;
  }
  return null;
}

/**
 * Tensors from a parsed safetensors file, in header order. F16 and BF16 data (decoded exactly to
 * float32) become float32, F64 float64, and the integer types int32.
 */
export function tensorsFromSafetensors(
  file: SafetensorsFile,
  opts: TensorLoadOptions = {},
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, e] of file.tensors) {
    const float = !(e.data instanceof Int32Array);
    const dtype: DType = float
      ? (opts.dtype ?? (e.data instanceof Float64Array ? 'float64' : 'float32'))
      : 'int32';
    out.set(name, tensor(e.data, e.shape, { dtype, backend: opts.backend }));
  }
  return out;
}

/** A module's parameters as the bytes of a safetensors file (diffusers' layout and names). */
export async function serializeModule(
  module: Module,
  opts: { dtype?: 'F32' | 'F16' | 'F64'; metadata?: Record<string, string> } = {},
): Promise<Uint8Array> {
  const entries = await tensorsToWrite(module.stateDict(), opts.dtype);
  return serializeSafetensors(entries, opts.metadata ?? { format: 'pt' });
}

/**
 * Loads safetensors bytes into a module's parameters through `loadStateDict`; `source` names the
 * bytes in errors (a URL, a file name). Nothing is changed when anything is wrong.
 */
export async function loadModuleFromBytes(
  module: Module,
  bytes: Uint8Array,
  source: string,
  opts: Omit<LoadOptions, 'source'> = {},
): Promise<void> {
  const tensors = tensorsFromSafetensors(parseSafetensors(bytes, source), {
    backend: module.parameters()[0]?.backend,
  });
  try {
    await module.loadStateDict(tensors, { ...opts, source });
  } finally {
    disposeAll(tensors);
  }
}

/** Disposes every tensor of a map (a state dict snapshot, tensors read from a file). */
export function disposeAll(tensors: ReadonlyMap<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}
