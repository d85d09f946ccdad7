/** Image I/O: PNG (decode and encode), JPEG (decode), animated GIF (encode), grids, resizing. */
export * from './image.js';
export { decodePng, encodePng, isPng, type PngEncodeOptions } from './png.js';
export { decodeJpeg, isJpeg } from './jpeg.js';
export { encodeGif, type GifOptions, type QuantizeMethod } from './gif.js';
export { decodeImage, readImage, readImageSync } from './read.js';
export { centerCropPlanes, flipPlanesInPlace, resizeCoverPlanes, resizePlanes } from './resize.js';
export * from './grid.js';
