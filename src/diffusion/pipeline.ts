/**
 * Model folders for sampling: find the denoiser's weights (EMA or not), its condition source
 * (class labels, or a tokenizer and text encoder) and the scheduler config in a `sumi train`
 * checkpoint, a diffusers pipeline folder or a bare UNet folder; and write a sample-ready pipeline
 * folder. Sampling itself (re-exported here): generate.ts.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { Backend } from '../engine/index.js';
import { saveModule } from '../nn/index.js';
import {
  type AnyDiffusersModel,
  CONFIG_NAME,
  ConfigError,
  type Denoiser,
  DIFFUSERS_VERSION,
  loadModel,
  WEIGHTS_NAME,
  writeFileAtomic,
  writeTextAtomic,
} from '../nn/models/index.js';
import {
  classConditioning,
  type ConditionComponent,
  type ConditionSource,
  unconditional,
} from './conditioning.js';
import { ModelDirError, type ModelInfo, pipelineIndex } from './generate.js';
import { loadTextConditioning } from './text-conditioning.js';
import { checkLatentDenoiser, LatentError, type LatentDecoder } from './latent/vae.js';
import { LATENT_VAE_DIR, loadVae, sha256Hex, vaeDecoder } from './latent/vae-fs.js';
import { TEXT_ENCODER_DIR, TOKENIZER_DIR } from './text-source.js';
import { isDir, isFile } from './files.js';

export * from './generate.js';
export * from './sampling-replicas.js';

export interface ModelDirLayout {
  /** The directory holding the model (a checkpoint inside a training output dir, say). */
  root: string;
  unetDir: string;
  emaDir: string | null;
  /** `text_encoder/` (and its EMA twin) and `tokenizer/` of a text-to-image pipeline. */
  textEncoderDir: string | null;
  textEncoderEmaDir: string | null;
  tokenizerDir: string | null;
  /** `vae/` of a latent pipeline (the autoencoder its samples are decoded by). */
  vaeDir: string | null;
  schedulerConfigPath: string | null;
  info: ModelInfo | null;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelDirError(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ModelDirError(
      `${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`,
    );
  }
}

/**
 * Where the parts of a model directory are. Accepts a training output directory (uses its
 * `checkpoint/`, or `checkpoint.old/` after an interrupted save), a checkpoint or diffusers
 * DDPMPipeline folder (`unet/`, `unet_ema/`, `scheduler/`), or a UNet2DModel folder
 * (`config.json` + weights, with `scheduler_config.json` beside it or in `../scheduler/`).
 */
export async function resolveModelDir(dir: string): Promise<ModelDirLayout> {
  if (!(await isDir(dir))) throw new ModelDirError(`model directory '${dir}' does not exist`);
  let root = dir;
  for (const sub of ['checkpoint', 'checkpoint.old']) {
    if (await isDir(join(dir, sub, 'unet'))) {
      root = join(dir, sub);
      break;
    }
  }
  let unetDir: string;
  let schedulerCandidates: string[];
  if (await isDir(join(root, 'unet'))) {
    unetDir = join(root, 'unet');
    schedulerCandidates = [join(root, 'scheduler', 'scheduler_config.json')];
  } else if (await isFile(join(root, CONFIG_NAME))) {
    unetDir = root;
    schedulerCandidates = [
      join(root, 'scheduler_config.json'),
      join(root, 'scheduler', 'scheduler_config.json'),
      join(dirname(root), 'scheduler', 'scheduler_config.json'),
    ];
  } else {
    throw new ModelDirError(
      `${dir}: not a model directory: found neither unet/config.json (a 'sumi train' ` +
        `checkpoint or a diffusers DDPMPipeline folder) nor config.json (a UNet2DModel folder)`,
    );
  }
  if (!(await isFile(join(unetDir, CONFIG_NAME)))) {
    throw new ModelDirError(`${unetDir}: missing ${CONFIG_NAME}`);
  }
  let schedulerConfigPath: string | null = null;
  for (const c of schedulerCandidates) {
    if (await isFile(c)) {
      schedulerConfigPath = c;
      break;
    }
  }
  const emaDir = unetDir !== root ? join(root, 'unet_ema') : null;
  const infoPath = join(root, 'sumi.json');
  const info = (await isFile(infoPath)) ? ((await readJson(infoPath)) as ModelInfo) : null;
  const dirIn = async (name: string): Promise<string | null> =>
    unetDir !== root && (await isDir(join(root, name))) ? join(root, name) : null;
  return {
    root,
    unetDir,
    emaDir: emaDir !== null && (await isDir(emaDir)) ? emaDir : null,
    textEncoderDir: await dirIn(TEXT_ENCODER_DIR),
    textEncoderEmaDir: await dirIn(`${TEXT_ENCODER_DIR}_ema`),
    tokenizerDir: await dirIn(TOKENIZER_DIR),
    vaeDir: await dirIn(LATENT_VAE_DIR),
    schedulerConfigPath,
    info,
  };
}

export type WeightsChoice = 'auto' | 'ema' | 'model';

export interface LoadedPipeline {
  /** The denoiser (UNet2DModel or UNet2DConditionModel), in eval mode. */
  model: Denoiser;
  /** What the denoiser is conditioned on, and how requests become its conditioning. */
  condition: ConditionSource;
  /** The diffusers scheduler config of training (DDPMScheduler defaults when the folder has none). */
  schedulerConfig: Record<string, unknown>;
  info: ModelInfo | null;
  /** Which weights were loaded. */
  weights: 'ema' | 'model';
  layout: ModelDirLayout;
  /**
   * A latent pipeline's autoencoder (vae/): the denoiser samples latents, which it decodes to
   * images (null: the denoiser samples pixels).
   */
  vae: LatentDecoder | null;
}

/**
 * What a model does, by its sumi.json: generate from noise (and its condition), upscale a
 * low-resolution image (SR3, `upscale`), or fill the masked region of an image (`inpaint`).
 */
export type ModelTask = 'generate' | 'upscale' | 'inpaint';

export function modelTaskOf(info: ModelInfo | null): ModelTask {
  if (info?.upscale !== undefined) return 'upscale';
  if (info?.inpaint !== undefined) return 'inpaint';
  return 'generate';
}

/** A model loaded for a task it does not do (an upscaler for sampling, say): a usage error. */
export class ModelTaskError extends ModelDirError {
  override name = 'ModelTaskError';
}

/** Throws a ModelTaskError, naming the command that takes the model, unless its task is one of `tasks`. */
function checkModelTask(root: string, info: ModelInfo | null, tasks: readonly ModelTask[]): void {
  const task = modelTaskOf(info);
  if (tasks.includes(task)) return;
  if (task === 'upscale') {
    throw new ModelTaskError(
      `${root}: an SR3 upscaler (×${info!.upscale!.factor}, sumi.json "upscale"): it takes a ` +
        "low-resolution image; use 'sumi edit upscale'",
    );
  }
  if (task === 'inpaint') {
    throw new ModelTaskError(
      `${root}: an inpainting model (sumi.json "inpaint"): it needs an image and a mask; use ` +
        "'sumi edit inpaint --image IMG --mask MASK'",
    );
  }
  const wanted = tasks.includes('upscale') ? 'an upscaler' : 'an inpainting model';
  const flag = tasks.includes('upscale') ? 'upscale' : 'inpaint';
  throw new ModelTaskError(
    `${root}: not ${wanted} (no "${flag}" in sumi.json); train one with 'sumi train --task ${flag}'`,
  );
}

/**
 * A latent pipeline (vae/) loads for a caller that decodes latents (`latent`), and only as a
 * generating model: an inpainting-trained one (in_channels 2c + 1 of the latents) is refused by
 * name rather than by its channels.
 */
function checkLatentTask(layout: ModelDirLayout, latent: boolean): void {
  if (!latent) {
    throw new ModelTaskError(
      `${layout.root}: a latent diffusion model (vae/): its denoiser works on latents; ` +
        "'sumi sample', 'sumi export' and 'sumi edit' take it, this command runs on pixels",
    );
  }
  const task = modelTaskOf(layout.info);
  if (task !== 'generate') {
    throw new ModelTaskError(
      `${layout.root}: ${task === 'inpaint' ? 'an inpainting-trained' : 'an upscaling'} latent ` +
        `model (vae/ and sumi.json "${task}") is not supported` +
        (task === 'inpaint'
          ? '; a latent model trained to generate inpaints by mask blending'
          : ''),
    );
  }
}

/** Loads a model directory for sampling (see `resolveModelDir`); EMA weights when present. */
export async function loadPipeline(
  dir: string,
  opts: {
    weights?: WeightsChoice;
    backend?: Backend;
    /**
     * The tasks the caller runs (default: generate): a model that does another (an SR3 upscaler,
     * an inpainting model; sumi.json `upscale`, `inpaint`) is refused with a ModelTaskError.
     */
    tasks?: readonly ModelTask[];
    /**
     * The caller decodes latents (sumi sample, export): a latent pipeline (vae/) loads with its
     * autoencoder. Otherwise (the default) one is refused with a ModelTaskError, as the caller
     * would run the denoiser on pixels.
     */
    latent?: boolean;
  } = {},
): Promise<LoadedPipeline> {
  const layout = await resolveModelDir(dir);
  checkModelTask(layout.root, layout.info, opts.tasks ?? ['generate']);
  if (layout.vaeDir !== null) checkLatentTask(layout, opts.latent === true);
  const choice = opts.weights ?? 'auto';
  if (choice === 'ema' && layout.emaDir === null) {
    throw new ModelDirError(
      `${layout.root}: has no EMA weights (unet_ema/); use the model weights`,
    );
  }
  const useEma = choice !== 'model' && layout.emaDir !== null;
  const from = useEma ? layout.emaDir! : layout.unetDir;
  let loaded: AnyDiffusersModel;
  try {
    loaded = await loadModel(from, { backend: opts.backend });
  } catch (e) {
    // Config errors name the class, not the file: add the file.
    if (e instanceof ConfigError && !e.message.includes(from)) {
      throw new ModelDirError(`${join(from, CONFIG_NAME)}: ${e.message}`);
    }
    throw e;
  }
  if (!isDenoiser(loaded)) {
    throw new ModelDirError(
      `${join(from, CONFIG_NAME)}: a ${loaded.className} is not a denoiser (UNet2DModel or UNet2DConditionModel)`,
    );
  }
  const model = loaded;
  model.eval();
  const condition = await conditionSourceOf(layout, model, { useEma, backend: opts.backend });
  let schedulerConfig: Record<string, unknown> = {};
  if (layout.schedulerConfigPath !== null) {
    const json = await readJson(layout.schedulerConfigPath);
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new ModelDirError(`${layout.schedulerConfigPath}: expected a JSON object`);
    }
    schedulerConfig = json as Record<string, unknown>;
  }
  return {
    model,
    condition,
    schedulerConfig,
    info: layout.info,
    weights: useEma ? 'ema' : 'model',
    layout,
    vae: layout.vaeDir === null ? null : await latentDecoderOf(layout.vaeDir, model, opts.backend),
  };
}

/** The autoencoder of a latent pipeline, checked against its denoiser's channels. */
async function latentDecoderOf(
  vaeDir: string,
  model: Denoiser,
  backend: Backend | undefined,
): Promise<LatentDecoder> {
  try {
    const decoder = vaeDecoder(await loadVae(vaeDir, { backend }));
    checkLatentDenoiser(decoder.spec, model, vaeDir);
    return decoder;
  } catch (e) {
    if (e instanceof LatentError) throw new ModelDirError(e.message);
    throw e;
  }
}

/** labelDropout of the trainer state in a checkpoint folder (undefined without one). */
async function trainedConditionDropout(root: string): Promise<number | undefined> {
  const path = join(root, 'trainer_state.json');
  if (!(await isFile(path))) return undefined;
  const st = (await readJson(path)) as { config?: { labelDropout?: unknown } } | null;
  const p = st?.config?.labelDropout;
  return typeof p === 'number' ? p : undefined;
}

function isDenoiser(m: AnyDiffusersModel): m is AnyDiffusersModel & Denoiser {
  return 'denoise' in m;
}

/**
 * The condition source of a model folder: its tokenizer and text encoder when the denoiser has
 * cross-attention, its classes (sumi.json) when it has a class embedding, else none.
 */
async function conditionSourceOf(
  layout: ModelDirLayout,
  model: Denoiser,
  opts: { useEma: boolean; backend?: Backend },
): Promise<ConditionSource> {
  const inputs = model.conditioningInputs;
  const info = layout.info;
  // Older sumi.json files lack conditionDropout; a checkpoint's trainer state has it.
  const dropout = info?.conditionDropout ?? (await trainedConditionDropout(layout.root));
  if (inputs.crossAttentionDim !== null) {
    if (layout.textEncoderDir === null || layout.tokenizerDir === null) {
      throw new ModelDirError(
        `${layout.root}: the denoiser has cross-attention but the folder has no ` +
          `${[layout.textEncoderDir === null ? `${TEXT_ENCODER_DIR}/` : '', layout.tokenizerDir === null ? `${TOKENIZER_DIR}/` : ''].filter((s) => s !== '').join(' and ')}`,
      );
    }
    const encoderDir =
      opts.useEma && layout.textEncoderEmaDir !== null
        ? layout.textEncoderEmaDir
        : layout.textEncoderDir;
    return loadTextConditioning({
      encoderDir,
      tokenizerDir: layout.tokenizerDir,
      crossAttentionDim: inputs.crossAttentionDim,
      hasNull: (dropout ?? 0) > 0,
      backend: opts.backend,
    });
  }
  if (inputs.numClassEmbeds !== null) {
    const k = info?.numClasses ?? null;
    if (k === null) {
      throw new ModelDirError(
        `${layout.root}: the model is class-conditional but sumi.json does not give its classes`,
      );
    }
    return classConditioning({
      numClasses: k,
      // Without a recorded dropout the null class is taken to be trained, as it always was.
      nullClassId: dropout === 0 ? null : (info?.nullClassId ?? null),
      ...(info?.classNames ? { classNames: info.classNames } : {}),
    });
  }
  return unconditional();
}

/**
 * Writes a sample-ready pipeline folder (no trainer state): the denoiser as `unet/`, a latent
 * pipeline's autoencoder as `vae/`, the
 * condition source's components and files (text_encoder/, tokenizer/), the scheduler config,
 * model_index.json and sumi.json, each file atomically.
 */
export async function savePipeline(
  p: LoadedPipeline,
  out: string,
  opts: { dtype?: 'F32' | 'F16' } = {},
): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const parts: {
    name: string;
    module: Denoiser | ConditionComponent['module'];
    weights: string;
  }[] = [
    { name: 'unet', module: p.model, weights: WEIGHTS_NAME },
    ...p.condition.components.map((c) => ({
      name: c.name,
      module: c.module,
      weights: c.weightsName,
    })),
  ];
  for (const part of parts) {
    await mkdir(join(out, part.name), { recursive: true });
    await saveModule(part.module, join(out, part.name, part.weights), {
      dtype,
      metadata: { format: 'pt' },
    });
    await writeTextAtomic(join(out, part.name, CONFIG_NAME), part.module.configJson());
  }
  for (const f of p.condition.files()) {
    await mkdir(dirname(join(out, f.path)), { recursive: true });
    await writeFileAtomic(join(out, f.path), f.bytes);
  }
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  await mkdir(join(out, 'scheduler'), { recursive: true });
  await writeTextAtomic(
    join(out, 'scheduler', 'scheduler_config.json'),
    json({
      _class_name: 'DDPMScheduler',
      _diffusers_version: DIFFUSERS_VERSION,
      ...p.schedulerConfig,
    }),
  );
  let info = p.info;
  if (p.vae !== null) {
    await mkdir(join(out, LATENT_VAE_DIR), { recursive: true });
    const vaeWeights = join(out, LATENT_VAE_DIR, WEIGHTS_NAME);
    await saveModule(p.vae.vae, vaeWeights, { dtype, metadata: { format: 'pt' } });
    await writeTextAtomic(join(out, LATENT_VAE_DIR, CONFIG_NAME), p.vae.vae.configJson());
    // sumi.json names the vae by the sha256 of its weights file: the one written here (f16 bytes
    // when exported as f16), not the training run's.
    if (info?.latent) {
      info = {
        ...info,
        latent: { ...info.latent, vaeSha256: sha256Hex(await readFile(vaeWeights)) },
      };
    }
  }
  await writeTextAtomic(
    join(out, 'model_index.json'),
    json(pipelineIndex(p.model, p.condition, p.vae?.spec.vaeClass)),
  );
  if (info !== null) await writeTextAtomic(join(out, 'sumi.json'), json(info));
}
