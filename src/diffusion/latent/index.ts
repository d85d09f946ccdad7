/** Latent diffusion: the autoencoder's latents, their cache, and decoding samples to pixels. */
export * from './vae.js';
export * from './cache.js';
export * from './vae-fs.js';
export * from './cache-fs.js';
