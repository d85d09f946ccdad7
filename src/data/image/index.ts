/**
 * Images in memory: PNG (decode and encode), JPEG (decode), animated GIF (encode), grids,
 * resizing, edge maps (Sobel, Canny) and foreground masks. Reading and writing image files:
 * read.ts and save.ts (Node).
 */
export * from './image.js';
export { decodePng, encodePng, isPng, type PngEncodeOptions } from './png.js';
export { decodeJpeg, isJpeg } from './jpeg.js';
export { encodeGif, type GifOptions, type QuantizeMethod } from './gif.js';
export { decodeImage } from './decode.js';
export { centerCropPlanes, flipPlanesInPlace, resizeCoverPlanes, resizePlanes } from './resize.js';
export * from './grid.js';
export {
  EDGE_THRESHOLD,
  type EdgeAgreement,
  edgeAgreement,
  sobelEdges,
  sobelMagnitude,
} from './edges.js';
export {
  CANNY_DEFAULTS,
  type CannyOptions,
  cannyEdges,
  gaussianBlur,
  hysteresis,
  nonMaximumSuppression,
  sobelGradients,
} from './canny.js';
export { backgroundColour, foregroundMask, MASK_THRESHOLD } from './mask.js';
