/** Image I/O: PNG (decode and encode), JPEG (decode), animated GIF (encode), grids, resizing. */
export * from './image.js';
export { decodePng, encodePng, isPng, type PngEncodeOptions, type PngFilter } from './png.js';
export { decodeJpeg, isJpeg } from './jpeg.js';
export { encodeGif, type GifOptions } from './gif.js';
export type { QuantizeMethod } from './quantize.js';
export { decodeImage, readImage, readImageSync } from './read.js';
export { centerCropPlanes, flipPlanesInPlace, resizeCoverPlanes, resizePlanes } from './resize.js';
export * from './grid.js';
