/**
 * A shipped model folder fetched over HTTP and built with Sumi's bytes API: the denoiser from
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

/** The bytes at `url`; a missing file is an error naming it. */
async function fetchBytes(url: string): Promise<Uint8Array> {
  return bytesOf(await fetch(url), url);
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

export async function loadBrowserPipeline(base: string): Promise<BrowserPipeline> {
  const infoUrl = `${base}/sumi.json`;
  const infoRes = await fetch(infoUrl);
  if (infoRes.status === 404) {
    const name = base.slice(base.lastIndexOf('/') + 1);
    throw new Error(
      `${infoUrl}: HTTP 404: this site has no ${name} (models/${name}/ was not in the ` +
        'repository when the site was built or served)',
    );
  }
  const info = parseConfigJson(await bytesOf(infoRes, infoUrl), infoUrl) as unknown as ModelInfo;
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
