/**
 * Training diffusion models (config, trainer: DDPM Algorithm 1, atomic checkpoints, the run loop)
 * and the classifiers of classifier guidance and evaluation.
 */
export * from './config.js';
export * from './streams.js';
export * from './checkpoint.js';
export * from './trainer.js';
export * from './run.js';
export * from './setup.js';
export * from './dreambooth.js';
export * from './init.js';
export * from './resume.js';
export * from './classifier-config.js';
export * from './classifier-trainer.js';
export * from './classifier-run.js';
export * from './text-trainer.js';
export * from './text-run.js';
export * from './run-loop.js';
export * from './vae-config.js';
export * from './vae-eval.js';
export * from './vae-trainer.js';
export * from './vae-run.js';
// The sampling pipeline (loading model directories, generating) rides along so that the diffusion
// layer's index needs one line for both.
export * from '../pipeline.js';
