/** Neural-network layer: modules, layers, initialization, optimizers, safetensors I/O. */
export * from './module.js';
export * from './init.js';
export * from './layers.js';
export * from './attention.js';
export * from './safetensors.js';
export * from './safetensors-fs.js';
export * from './optim.js';
export * from './ema.js';
export * from './lr-schedule.js';
export * from './lora.js';
export * from './lora-format.js';
export * from './state-dict.js';
export * from './state-io.js';
