/**
 * A model folder, fetched over HTTP (the shipped models) or held in memory (the model trained in
 * the tab), built with Sumi's bytes API: the denoiser from
 * unet/ (config.json + safetensors), the scheduler config, sumi.json, what the denoiser is
 * conditioned on (its classes, or tokenizer/ and text_encoder/), and a latent model's
 * autoencoder (vae/), which decodes its samples.
 */
import {
  checkedTextConditioning,
  checkLatentDenoiser,
  clipTextModelFromBytes,
  classConditioning,
  type ConditionSource,
  CONFIG_NAME,
  type Denoiser,
  LATENT_VAE_DIR,
  LatentDecoder,
  modelFromBytes,
  type ModelInfo,
  parseConfigJson,
  parseTokenizer,
  unconditional,
  vaeFromBytes,
  WEIGHTS_NAME,
} from '../src/index.js';

export interface BrowserPipeline {
  model: Denoiser;
  condition: ConditionSource;
  schedulerConfig: Record<string, unknown>;
  info: ModelInfo;
  /** A latent model's autoencoder (sumi.json `latent`): decodes the denoiser's samples. */
  vae: LatentDecoder | null;
}

/** The body of a response to `url`; a failed request is an error naming it. */
async function bytesOf(res: Response, url: string): Promise<Uint8Array> {
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/**
 * Where a model folder's files come from: `read(path)` gives the bytes of a file of the folder
 * (path relative to it, e.g. `unet/config.json`) or an error naming it; `base` names the folder
 * in messages.
 */
export interface FolderSource {
  base: string;
  read(path: string): Promise<Uint8Array>;
}

/** A folder served over HTTP at `base` (a missing sumi.json: the site has no such model). */
export function urlFolder(base: string): FolderSource {
  return {
    base,
    async read(path) {
      const url = `${base}/${path}`;
      const res = await fetch(url);
      if (path === 'sumi.json' && res.status === 404) {
        const name = base.slice(base.lastIndexOf('/') + 1);
        throw new Error(
          `${url}: HTTP 404: this site has no ${name} (models/${name}/ was not in the ` +
            'repository when the site was built or served)',
        );
      }
      return bytesOf(res, url);
    },
  };
}

/** A folder held in memory as files by path (the model trained in the tab), named `base`. */
export function memoryFolder(
  base: string,
  files: Readonly<Record<string, Uint8Array>>,
): FolderSource {
  return {
    base,
    read(path) {
      const bytes = files[path];
      return bytes !== undefined
        ? Promise.resolve(bytes)
        : Promise.reject(new Error(`${base}/${path}: not among the model's files`));
    },
  };
}

export async function loadBrowserPipeline(folder: FolderSource): Promise<BrowserPipeline> {
  const { base } = folder;
  // Every file is named `${base}/<path>` here, for the messages; the folder reads <path>.
  const fetchBytes = (url: string): Promise<Uint8Array> => folder.read(url.slice(base.length + 1));
  const infoUrl = `${base}/sumi.json`;
  const info = parseConfigJson(await fetchBytes(infoUrl), infoUrl) as unknown as ModelInfo;
  if (info.format !== 'sumi-model') {
    throw new Error(
      `${base}/sumi.json: format: expected "sumi-model", found ${String(info.format)}`,
    );
  }
  const schedulerConfig = parseConfigJson(
    await fetchBytes(`${base}/scheduler/scheduler_config.json`),
    `${base}/scheduler/scheduler_config.json`,
  );
  const unet = await modelFromBytes(
    await fetchBytes(`${base}/unet/config.json`),
    await fetchBytes(`${base}/unet/diffusion_pytorch_model.safetensors`),
    `${base}/unet`,
  );
  if (!('denoise' in unet)) {
    throw new Error(`${base}/unet/config.json: a ${unet.className} is not a denoiser`);
  }
  const model: Denoiser = unet;
  const hasNull = (info.conditionDropout ?? 0) > 0;
  // What the denoiser takes decides the condition source, as loadPipeline does in Node.
  const inputs = model.conditioningInputs;
  let condition: ConditionSource;
  if (inputs.crossAttentionDim !== null) {
    const tokenizer = parseTokenizer(
      text(await fetchBytes(`${base}/tokenizer/tokenizer.json`)),
      text(await fetchBytes(`${base}/tokenizer/tokenizer_config.json`)),
      `${base}/tokenizer`,
    );
    const encoder = await clipTextModelFromBytes(
      await fetchBytes(`${base}/text_encoder/config.json`),
      await fetchBytes(`${base}/text_encoder/model.safetensors`),
      `${base}/text_encoder`,
    );
    condition = checkedTextConditioning({
      tokenizer,
      encoder,
      crossAttentionDim: inputs.crossAttentionDim,
      hasNull,
      encoderConfig: `${base}/text_encoder/config.json`,
      tokenizerDir: `${base}/tokenizer`,
    });
  } else if (inputs.numClassEmbeds !== null) {
    if (info.numClasses === null || info.numClasses === undefined) {
      throw new Error(
        `${base}/sumi.json: the model is class-conditional but sumi.json does not give its classes`,
      );
    }
    condition = classConditioning({
      numClasses: info.numClasses,
      // Without a recorded dropout the null class is taken to be trained (as loadPipeline does).
      nullClassId: info.conditionDropout === 0 ? null : (info.nullClassId ?? null),
      ...(info.classNames ? { classNames: info.classNames } : {}),
    });
  } else {
    condition = unconditional();
  }
  // A latent model (sumi.json `latent`, as 'sumi train --vae' and 'sumi export' write it) samples
  // latents, which its vae/ decodes; the vae's latent channels must be the U-Net's.
  let vae: LatentDecoder | null = null;
  if (info.latent !== undefined) {
    const dir = `${base}/${LATENT_VAE_DIR}`;
    const v = await vaeFromBytes(
      await fetchBytes(`${dir}/${CONFIG_NAME}`),
      await fetchBytes(`${dir}/${WEIGHTS_NAME}`),
      dir,
    );
    checkLatentDenoiser(v.spec, model, dir);
    vae = new LatentDecoder(v.vae, v.spec);
  }
  return { model, condition, schedulerConfig, info, vae };
}
