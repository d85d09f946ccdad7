/**
 * diffusers-compatible models: UNet2DModel, UNet2DConditionModel, AutoencoderKL, VQModel, and
 * the EncoderClassifierModel of classifier guidance.
 */
export * from './config.js';
export * from './common.js';
export * from './diffusers-model.js';
export * from './embeddings.js';
export * from './denoiser.js';
export * from './resnet.js';
export * from './unet-2d-blocks.js';
export * from './unet-model.js';
export * from './transformer-2d.js';
export * from './cross-attn-blocks.js';
export * from './unet-2d.js';
export * from './unet-2d-condition.js';
export * from './vae.js';
export * from './autoencoder-kl.js';
export * from './vq-model.js';
export * from './classifier.js';
export * from './timegrad.js';
export * from './create.js';
export * from './io.js';
export * from './clip-text.js';
export * from './clip-text-fs.js';
export * from './controlnet.js';
export * from './diffusion-lm.js';
export * from './controlnet-fs.js';
export * from './patch-discriminator.js';
