/** The eval layer: the diffusers parity runner, the evaluation metrics and model evaluation. */
export * from './parity/index.js';
export * from './metrics/index.js';
export * from './reference.js';
export * from './evaluate.js';
export * from './sample-folder.js';
export * from './sweep.js';
export * from './svg-chart.js';
export * from './fan-chart.js';
export * from './forecast-baselines.js';
export * from './forecast-eval.js';
