/**
 * A shipped model folder fetched over HTTP and built with Sumi's bytes API: the denoiser from
 * unet/ (config.json + safetensors), the scheduler config, sumi.json, and what the denoiser is
 * conditioned on (its classes, or tokenizer/ and text_encoder/).
 */
import {
  checkedTextConditioning,
  clipTextModelFromBytes,
  classConditioning,
  type ConditionSource,
  type Denoiser,
  modelFromBytes,
  type ModelInfo,
  parseConfigJson,
  parseTokenizer,
  unconditional,
} from '../src/index.js';

export interface BrowserPipeline {
  model: Denoiser;
  condition: ConditionSource;
  schedulerConfig: Record<string, unknown>;
  info: ModelInfo;
}

/** The bytes at `url`; a missing file is an error naming it. */
async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

export async function loadBrowserPipeline(base: string): Promise<BrowserPipeline> {
  const info = parseConfigJson(
    await fetchBytes(`${base}/sumi.json`),
    `${base}/sumi.json`,
  ) as unknown as ModelInfo;
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
  return { model, condition, schedulerConfig, info };
}
