/**
 * Models in diffusers' folder layout: `config.json` (the resolved config, `_class_name` first)
 * and `diffusion_pytorch_model.safetensors` (F32 under diffusers' parameter names, metadata
 * {format: pt}), so a folder Sumi writes loads with diffusers' `from_pretrained` and the reverse.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend, FloatDType } from '../../engine/index.js';
import { loadModule, saveModule } from '../state-io.js';
import { AUTOENCODER_KL_SCHEMA, AutoencoderKL } from './autoencoder-kl.js';
import { ENCODER_CLASSIFIER_SCHEMA, EncoderClassifierModel } from './classifier.js';
import type { ModelInitOptions } from './common.js';
import { ConfigError, resolveConfig } from './config.js';
import { UNET_2D_CONDITION_SCHEMA, UNet2DConditionModel } from './unet-2d-condition.js';
import { UNET_2D_SCHEMA, UNet2DModel } from './unet-2d.js';
import { VQ_MODEL_SCHEMA, VQModel } from './vq-model.js';

export const CONFIG_NAME = 'config.json';
export const WEIGHTS_NAME = 'diffusion_pytorch_model.safetensors';

export type AnyDiffusersModel =
  UNet2DModel | UNet2DConditionModel | AutoencoderKL | VQModel | EncoderClassifierModel;

const constructors = {
  UNet2DModel: (c: Record<string, unknown>, o: ModelInitOptions) => new UNet2DModel(c, o),
  UNet2DConditionModel: (c: Record<string, unknown>, o: ModelInitOptions) =>
    new UNet2DConditionModel(c, o),
  AutoencoderKL: (c: Record<string, unknown>, o: ModelInitOptions) => new AutoencoderKL(c, o),
  VQModel: (c: Record<string, unknown>, o: ModelInitOptions) => new VQModel(c, o),
  EncoderClassifierModel: (c: Record<string, unknown>, o: ModelInitOptions) =>
    new EncoderClassifierModel(c, o),
} as const;

export type DiffusersModelClassName = keyof typeof constructors;
export const modelClassNames = Object.keys(constructors) as DiffusersModelClassName[];

/** Each class's config check: its schema's defaults filled in, every problem a ConfigError. */
const resolvers: {
  readonly [K in DiffusersModelClassName]: (raw: unknown, source: string) => object;
} = {
  UNet2DModel: (raw, source) => resolveConfig(UNET_2D_SCHEMA, raw, source).config,
  UNet2DConditionModel: (raw, source) =>
    resolveConfig(UNET_2D_CONDITION_SCHEMA, raw, source).config,
  AutoencoderKL: (raw, source) => resolveConfig(AUTOENCODER_KL_SCHEMA, raw, source).config,
  VQModel: (raw, source) => resolveConfig(VQ_MODEL_SCHEMA, raw, source).config,
  EncoderClassifierModel: (raw, source) =>
    resolveConfig(ENCODER_CLASSIFIER_SCHEMA, raw, source).config,
};

/** The supported class `name` (a config's `_class_name`); `where` starts the error message. */
function modelClassOf(name: unknown, where: string, missing: string): DiffusersModelClassName {
  if (typeof name !== 'string') throw new ConfigError(`${where}: ${missing}`);
  if (!Object.hasOwn(constructors, name)) {
    const shown = name.length > 60 ? `${name.slice(0, 60)}...` : name;
    throw new ConfigError(
      `${where}: unsupported model class '${shown}' (supported: ${modelClassNames.join(', ')})`,
    );
  }
  return name as DiffusersModelClassName;
}

/**
 * A randomly initialised model from a diffusers config object; the class comes from its
 * `_class_name` (or `className` when the config has none).
 */
export function createModel(
  config: Record<string, unknown>,
  opts: ModelInitOptions & { className?: string } = {},
): AnyDiffusersModel {
  const name = modelClassOf(
    config._class_name ?? opts.className,
    'createModel',
    'the config has no _class_name and no className was given',
  );
  try {
    return constructors[name](config, opts);
  } catch (e) {
    // Layers check their own sizes as they are built (GroupNorm groups, attention heads): what
    // the schema lets through and a layer refuses is a config error too.
    if (e instanceof Error && e.constructor === Error) {
      throw new ConfigError(`${name} config: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

/** Config files nest a few levels; deeper input is refused before anything walks it. */
const MAX_CONFIG_DEPTH = 32;

function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    deepest = Math.max(deepest, d + 1);
    if (deepest > MAX_CONFIG_DEPTH) break;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return deepest;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The JSON object of a config file's bytes (diffusers' config.json, or another library's config
 * read through this loader). As in Python's json module, the last of duplicate keys wins.
 * Errors are ConfigErrors naming `path`.
 */
export function parseConfigJson(bytes: Uint8Array, path: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ConfigError(`${path}: not UTF-8 text`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`${path}: expected a JSON object`);
  }
  if (depthOf(json) > MAX_CONFIG_DEPTH) {
    throw new ConfigError(`${path}: nested more than ${MAX_CONFIG_DEPTH} levels deep`);
  }
  return json as Record<string, unknown>;
}

/**
 * A diffusers model config.json, checked against its class's schema without building the model:
 * the class and the config with every default filled in. Errors are ConfigErrors naming `path`.
 */
export function parseModelConfig(
  bytes: Uint8Array,
  path: string,
): { className: DiffusersModelClassName; config: Record<string, unknown> } {
  const json = parseConfigJson(bytes, path);
  const className = modelClassOf(json._class_name, path, '_class_name: missing (a string)');
  return { className, config: resolvers[className](json, path) as Record<string, unknown> };
}

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
