/** Evaluation metrics over feature matrices, class labels and the variational bound; PSNR and SSIM. */
export * from './features.js';
export * from './eigh.js';
export * from './frechet.js';
export * from './kid.js';
export * from './precision-recall.js';
export * from './classes.js';
export * from './stats-cache.js';
export * from './nll.js';
export * from './image-quality.js';
export * from './forecast.js';
export * from './text.js';
