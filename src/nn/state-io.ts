/**
 * Between Module state dicts (or any named tensors: optimizer and EMA state) and safetensors
 * files, diffusers' `diffusion_pytorch_model.safetensors` included. Writing goes through the
 * atomic writer; every error names the file. The same conversions from and to bytes, without
 * files: state-dict.ts.
 */
import type { Tensor } from '../engine/index.js';
import type { LoadOptions, Module } from './module.js';
import { readSafetensors, writeSafetensors } from './safetensors-fs.js';
import {
  disposeAll,
  tensorsFromSafetensors,
  tensorsToWrite,
  type TensorLoadOptions,
} from './state-dict.js';

export interface SaveOptions {
  /** How floating-point tensors are stored (default: each tensor's own, F32 or F64). */
  dtype?: 'F32' | 'F16' | 'F64';
  /** Header metadata (default {format: 'pt'}, what diffusers writes). */
  metadata?: Record<string, string>;
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
    disposeAll(tensors);
  }
}
