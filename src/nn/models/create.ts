/**
 * Building diffusers models from their config.json (the class from `_class_name`, the config
 * checked against the class's schema), from bytes: no files, so it runs in a browser too. The
 * same from model folders on disk: io.ts.
 */
import { Generator } from '../../engine/index.js';
import { parseJsonObject } from '../json-object.js';
import { loadModuleFromBytes } from '../state-dict.js';
import { AUTOENCODER_KL_SCHEMA, AutoencoderKL } from './autoencoder-kl.js';
import { ENCODER_CLASSIFIER_SCHEMA, EncoderClassifierModel } from './classifier.js';
import {
  CLIP_TEXT_WEIGHTS_NAME,
  CLIPTextModel,
  type CLIPTextModelInput,
  resolveCLIPTextConfig,
} from './clip-text.js';
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

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The JSON object of a config file's bytes (diffusers' config.json, or another library's config
 * read through this loader); see parseJsonObject. Errors are ConfigErrors naming `path`.
 */
export function parseConfigJson(bytes: Uint8Array, path: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ConfigError(`${path}: not UTF-8 text`);
  }
  return parseJsonObject(text, path, ConfigError);
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

/**
 * A model from the bytes of its config.json and diffusers_pytorch_model.safetensors (fetched,
 * say); `source` names them in errors. The model comes back in eval mode, as from `loadModel`.
 */
export async function modelFromBytes(
  config: Uint8Array,
  weights: Uint8Array,
  source: string,
  opts: ModelInitOptions = {},
): Promise<AnyDiffusersModel> {
  const model = createModel(parseConfigJson(config, `${source}/${CONFIG_NAME}`), opts);
  await loadModuleFromBytes(model, weights, `${source}/${WEIGHTS_NAME}`);
  return model.eval();
}

/**
 * A text encoder from the bytes of transformers' config.json (no `_class_name`: the CLIPTextConfig
 * keys) and model.safetensors; `source` (the text_encoder/ folder) names them in errors. Eval
 * mode, as from `from_pretrained`. (`loadCLIPTextModel` reads the folder from files.)
 */
export async function clipTextModelFromBytes(
  config: Uint8Array,
  weights: Uint8Array,
  source: string,
  opts: ModelInitOptions = {},
): Promise<CLIPTextModel> {
  const path = `${source}/${CONFIG_NAME}`;
  const model = new CLIPTextModel(
    resolveCLIPTextConfig(parseConfigJson(config, path), path) as CLIPTextModelInput,
    // The initial weights are overwritten: a private stream leaves the shared one untouched.
    { generator: new Generator(0), ...opts },
  );
  await loadModuleFromBytes(model, weights, `${source}/${CLIP_TEXT_WEIGHTS_NAME}`);
  model.eval();
  return model;
}
