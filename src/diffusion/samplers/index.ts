/** Samplers (diffusers' noise schedulers), their registry and the sampling loop. */
export * from './common.js';
export * from './config.js';
export * from './spacing.js';
export * from './sigmas.js';
export { AlphaSchedulerBase, SchedulerBase } from './base.js';
export * from './sigma-scheduler.js';
export * from './multistep.js';
export * from './ddpm.js';
export * from './ddim.js';
export * from './euler.js';
export * from './euler-ancestral.js';
export * from './heun.js';
export * from './lms.js';
export * from './pndm.js';
export * from './dpm-solver.js';
export * from './unipc.js';
export * from './registry.js';
export * from './sample.js';
