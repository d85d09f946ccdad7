/**
 * Data: datasets (MNIST, the whole MNIST, Fashion-MNIST, colour emoji, folders of images) behind
 * one `Dataset` interface, a deterministic, resumable `DataLoader`, and image I/O (PNG, JPEG, GIF,
 * grids).
 */
export * from './dataset.js';
export * from './loader.js';
export * from './load.js';
export { loadMnist, MNIST_CLASSES } from './mnist.js';
export * from './fashion-mnist.js';
export { loadMnistFull, type MnistFullOptions } from './mnist-full.js';
export type { ImageSplit } from './idx-splits.js';
export { loadEmoji, type EmojiOptions } from './emoji.js';
export { findImages, loadImageFolder, type FolderOptions } from './folder.js';
export { ImageFileDataset, type ImageFileEntry, type ImageFileOptions } from './image-files.js';
export { parseIdx, readIdx, type IdxArray, type IdxType } from './idx.js';
export * from './image/index.js';
export { readImage, readImageSync } from './image/read.js';
export { saveGif, savePng } from './image/save.js';
export * from './captions.js';
export * from './tokenizer.js';
export * from './tokenizer-fs.js';
export * from './series.js';
export * from './series-fs.js';
export * from './text-corpus.js';
export * from './text-corpus-fs.js';
