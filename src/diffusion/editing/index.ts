/**
 * Editing pipelines: img2img (SDEdit), inpainting with RePaint resampling or an inpainting-trained
 * model, DDIM inversion, SR3 upscaling; the first, mask blending and inversion on latent models too.
 */
export * from './inputs.js';
export * from './loop.js';
export * from './latent.js';
export * from './img2img.js';
export * from './inpaint.js';
export * from './inpaint-model.js';
export * from './invert.js';
export * from './upscale.js';
