/**
 * JPEG decoding through the `jpeg-js` package (baseline and progressive, 8-bit).
 *
 * Hand-written here, two checks jpeg-js leaves to its caller: a memory limit in proportion to the
 * file (jpeg-js allocates every 8x8 block of the size a frame header claims before it reads any
 * image data, up to a fixed limit of its own), and that the file has a scan at all (jpeg-js
 * decodes a frame header alone to a blank image).
 */
import { decode } from 'jpeg-js';

import { ImageDecodeError, type RawImage } from './image.js';

/**
 * Every 8x8 block of a scan costs at least one bit (its DC code), so even a blank progressive
 * gray image needs a byte per 512 pixels; a frame claiming more pixels per byte than this (after
 * the first 2^16 pixels) is not real image data.
 */
const MAX_PIXELS_PER_BYTE = 1024;
const FREE_PIXELS = 2 ** 16;
/**
 * What jpeg-js counts per pixel while decoding, at most: 32-bit coefficients of three full-size
 * components (12 bytes), their sample planes (3), the interleaved result (3) and our copy (3).
 */
const BYTES_PER_PIXEL = 24;
/** Larger images are refused whatever the file's size (6 GB of decoding memory). */
const MAX_PIXELS = 256e6;

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** Whether a start-of-scan marker (FF DA) appears after the start-of-image marker. */
function hasScan(bytes: Uint8Array): boolean {
  for (let i = 2; i + 1 < bytes.length; i++) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xda) return true;
  }
  return false;
}

/**
 * Decodes a JPEG file to 8-bit RGB (gray JPEGs too). `name` starts every error message; errors
 * are `ImageDecodeError`s.
 */
export function decodeJpeg(bytes: Uint8Array, name = 'JPEG image'): RawImage {
  const fail = (msg: string): ImageDecodeError => new ImageDecodeError(`${name}: ${msg}`);
  if (!isJpeg(bytes)) throw fail('not a JPEG file (bad signature)');
  if (!hasScan(bytes)) throw fail('corrupt JPEG (no image data: no start-of-scan marker)');
  const maxPixels = FREE_PIXELS + MAX_PIXELS_PER_BYTE * bytes.length;
  const capped = maxPixels > MAX_PIXELS; // the fixed limits apply, not the file's size
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: Math.min(maxPixels, MAX_PIXELS) / 1e6,
      maxMemoryUsageInMB: (BYTES_PER_PIXEL * Math.min(maxPixels, MAX_PIXELS)) / 2 ** 20,
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/maxResolutionInMP|maxMemoryUsageInMB/.test(msg)) {
      throw fail(
        capped
          ? `too large to decode (more than ${MAX_PIXELS / 1e6} megapixels)`
          : `corrupt JPEG (the frame header claims more pixels than ${bytes.length} bytes can encode)`,
      );
    }
    throw fail(`corrupt JPEG (${msg})`);
  }
  if (img.width < 1 || img.height < 1 || img.data.length !== img.width * img.height * 3) {
    throw fail(`corrupt JPEG (decoded ${img.width}x${img.height})`);
  }
  return { width: img.width, height: img.height, channels: 3, data: img.data };
}
