/**
 * Between Module state dicts (or any named tensors: optimizer and EMA state) and safetensors
 * files, diffusers' `diffusion_pytorch_model.safetensors` included. Writing goes through the
 * atomic writer; every error names the file.
 */
import { type Backend, type DType, tensor, type Tensor } from '../engine/index.js';
import type { LoadOptions, Module } from './module.js';
import {
  readSafetensors,
  type SafetensorsFile,
  type TensorToWrite,
  writeSafetensors,
} from './safetensors.js';

export interface SaveOptions {
  /** How floating-point tensors are stored (default: each tensor's own, F32 or F64). */
  dtype?: 'F32' | 'F16' | 'F64';
  /** Header metadata (default {format: 'pt'}, what diffusers writes). */
  metadata?: Record<string, string>;
}

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

/** Writes named tensors (read back from any backend) to a safetensors file, atomically. */
export async function saveTensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor>,
  opts: SaveOptions = {},
): Promise<void> {
  const entries = await tensorsToWrite(tensors, opts.dtype);
  await writeSafetensors(path, entries, opts.metadata ?? { format: 'pt' });
}

/** Saves a module's parameters under their dotted names (a diffusers-compatible file). */
export async function saveModule(
  module: Module,
  path: string,
  opts: SaveOptions = {},
): Promise<void> {
  await saveTensors(path, module.stateDict(), opts);
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

/** Reads a safetensors file into tensors (see `tensorsFromSafetensors`). */
export async function loadTensors(
  path: string,
  opts: TensorLoadOptions = {},
): Promise<Map<string, Tensor>> {
  return tensorsFromSafetensors(await readSafetensors(path), opts);
}

/**
 * Loads a safetensors file (a diffusers checkpoint, say) into a module's parameters through
 * `loadStateDict`, whose errors (missing, unexpected, mis-shaped keys) name the file. Nothing is
 * changed when anything is wrong.
 */
export async function loadModule(
  module: Module,
  path: string,
  opts: Omit<LoadOptions, 'source'> = {},
): Promise<void> {
  const tensors = await loadTensors(path, { backend: module.parameters()[0]?.backend });
  try {
    await module.loadStateDict(tensors, { ...opts, source: path });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Disposes every tensor of a map (a state dict snapshot, tensors read from a file). */
export function disposeAll(tensors: ReadonlyMap<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}
