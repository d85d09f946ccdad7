/** The eval layer: the diffusers parity runner and the evaluation metrics. */
export * from './parity/index.js';
export * from './metrics/index.js';
