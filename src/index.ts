/**
 * Sumi, the browser-safe core (`import … from 'sumi'`): tensors and ops with autograd on the CPU
 * (WebAssembly SIMD) and WebGPU backends; modules, layers, optimizers, EMA and the diffusers model
 * classes, built from config.json and loaded from safetensors bytes; noise schedules, the forward
 * process, losses, samplers, guidance, sampling and the editing pipelines; in-memory images and the
 * tokenizer. Nothing here touches a file system: files, datasets and training runs are in
 * `sumi/node` (src/node.ts).
 */
export * from './engine/index.js';
// Two names are taken twice: the engine's (ops on tensors) are `linspace` and `AttentionOptions`
// here; the schedule's plain-array linspace and the Attention layer's options are renamed.
export { linspace, type AttentionOptions } from './engine/index.js';
export { linspace as linspaceArray } from './diffusion/schedule.js';
export { type AttentionOptions as AttentionLayerOptions } from './nn/attention.js';

export * from './nn/module.js';
export * from './nn/init.js';
export * from './nn/layers.js';
export * from './nn/attention.js';
export * from './nn/safetensors.js';
export * from './nn/state-dict.js';
export * from './nn/optim.js';
export * from './nn/ema.js';
export * from './nn/lr-schedule.js';
export * from './nn/lora.js';
export * from './nn/lora-format.js';

export * from './nn/models/config.js';
export * from './nn/models/common.js';
export * from './nn/models/diffusers-model.js';
export * from './nn/models/embeddings.js';
export * from './nn/models/denoiser.js';
export * from './nn/models/resnet.js';
export * from './nn/models/unet-2d-blocks.js';
export * from './nn/models/transformer-2d.js';
export * from './nn/models/cross-attn-blocks.js';
export * from './nn/models/unet-2d.js';
export * from './nn/models/unet-2d-condition.js';
export * from './nn/models/vae.js';
export * from './nn/models/autoencoder-kl.js';
export * from './nn/models/vq-model.js';
export * from './nn/models/patch-discriminator.js';
export * from './nn/models/classifier.js';
export * from './nn/models/timegrad.js';
export * from './nn/models/clip-text.js';
export * from './nn/models/diffusion-lm.js';
export * from './nn/models/create.js';

export * from './data/dataset.js';
export * from './data/loader.js';
export * from './data/image/index.js';
export * from './data/tokenizer.js';
export * from './data/series.js';
export * from './data/text-corpus.js';

export * from './diffusion/schedule.js';
export * from './diffusion/forward.js';
export * from './diffusion/losses.js';
export * from './diffusion/autoencoder-losses.js';
export * from './diffusion/samplers/index.js';
export * from './diffusion/conditioning.js';
export * from './diffusion/classifier-free.js';
export * from './diffusion/guidance.js';
export * from './diffusion/editing/index.js';
export * from './diffusion/latent/vae.js';
export * from './diffusion/text-source.js';
export * from './diffusion/text-diffusion.js';
export * from './diffusion/text-lm.js';
export * from './diffusion/generate.js';
export * from './diffusion/sampling-replicas.js';
export * from './diffusion/train-step.js';
export * from './diffusion/forecast.js';
export * from './diffusion/trainer/config.js';
export * from './diffusion/trainer/streams.js';
