/** The diffusion layer: noise schedules, the forward process, losses and samplers. */
export * from './schedule.js';
export * from './forward.js';
export * from './losses.js';
export * from './train-step.js';
export * from './samplers/index.js';
export * from './trainer/index.js';
export * from './conditioning.js';
export * from './classifier-free.js';
export * from './guidance.js';
export * from './classifier-dir.js';
export * from './editing/index.js';
export * from './forecast.js';
export * from './forecast-trainer.js';
export * from './text-diffusion.js';
export * from './text-lm.js';
export * from './control.js';
export * from './latent/index.js';
