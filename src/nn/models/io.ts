/**
 * Models in diffusers' folder layout: `config.json` (the resolved config, `_class_name` first)
 * and `diffusion_pytorch_model.safetensors` (F32 under diffusers' parameter names, metadata
 * {format: pt}), so a folder Sumi writes loads with diffusers' `from_pretrained` and the reverse.
 * Building a model from its config, or from the bytes of its files: create.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend, FloatDType } from '../../engine/index.js';
import { loadModule, saveModule } from '../state-io.js';
import { ConfigError } from './config.js';
import {
  type AnyDiffusersModel,
  CONFIG_NAME,
  createModel,
  parseConfigJson,
  WEIGHTS_NAME,
} from './create.js';

/** Reads and parses `<dir>/config.json` (see parseConfigJson). */
export async function readModelConfig(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, CONFIG_NAME);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  return parseConfigJson(bytes, path);
}

type ModelClass<M extends AnyDiffusersModel> = abstract new (...args: never[]) => M;

export interface LoadModelOptions {
  /** The parameters' dtype (default float32). */
  dtype?: FloatDType;
  /** Where the parameters live (default: the default backend). */
  backend?: Backend;
}

/**
 * Builds the model that `<dir>/config.json` describes and loads its weights; every missing,
 * unexpected or mis-shaped parameter is an error naming the file. The model comes back in eval
 * mode (dropout off), as from diffusers' `from_pretrained`; call `train()` to fine-tune. Pass `as`
 * to check the class (and get it typed).
 */
export async function loadModel<M extends AnyDiffusersModel>(
  dir: string,
  opts: LoadModelOptions & { as: ModelClass<M> },
): Promise<M>;
export async function loadModel(dir: string, opts?: LoadModelOptions): Promise<AnyDiffusersModel>;
export async function loadModel(
  dir: string,
  opts: LoadModelOptions & { as?: ModelClass<AnyDiffusersModel> } = {},
): Promise<AnyDiffusersModel> {
  const config = await readModelConfig(dir);
  const model = createModel(config);
  if (opts.as && !(model instanceof opts.as)) {
    throw new ConfigError(
      `${join(dir, CONFIG_NAME)}: expected a ${opts.as.name}, found ${model.className}`,
    );
  }
  const weights = join(dir, WEIGHTS_NAME);
  try {
    await stat(weights);
  } catch {
    throw new Error(`${dir}: no ${WEIGHTS_NAME} (only safetensors weights are read)`);
  }
  await loadModule(model, weights);
  if (opts.dtype !== undefined || opts.backend !== undefined) {
    await model.to({ dtype: opts.dtype, backend: opts.backend });
  }
  return model.eval();
}

/** Writes text to a file atomically: a temporary file, fsynced, renamed over the target. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, text);
}

/** Writes text (UTF-8) or bytes to a file atomically (see writeTextAtomic). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const handle = await open(tmp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export interface SaveModelOptions {
  /** How the weights are stored (default F32, as diffusers' save_pretrained). */
  dtype?: 'F32' | 'F16' | 'F64';
}

/**
 * Saves a model as diffusers does (`save_pretrained(dir, safe_serialization=True)`): the weights
 * first, then config.json, each written atomically, so a reader never sees a half-written file.
 */
export async function saveModel(
  model: AnyDiffusersModel,
  dir: string,
  opts: SaveModelOptions = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveModule(model, join(dir, WEIGHTS_NAME), {
    dtype: opts.dtype ?? 'F32',
    metadata: { format: 'pt' },
  });
  await writeTextAtomic(join(dir, CONFIG_NAME), model.configJson());
}
