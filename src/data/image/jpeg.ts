/** JPEG decoding through the `jpeg-js` package (baseline and progressive, 8-bit). */
import { decode } from 'jpeg-js';

import type { RawImage } from './image.js';

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** Decodes a JPEG file to 8-bit RGB (gray JPEGs too). `name` starts every error message. */
export function decodeJpeg(bytes: Uint8Array, name = 'JPEG image'): RawImage {
  if (!isJpeg(bytes)) throw new Error(`${name}: not a JPEG file (bad signature)`);
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: 256,
      maxMemoryUsageInMB: 2048,
    });
  } catch (e) {
    throw new Error(`${name}: corrupt JPEG (${e instanceof Error ? e.message : String(e)})`);
  }
  if (img.width < 1 || img.height < 1 || img.data.length !== img.width * img.height * 3) {
    throw new Error(`${name}: corrupt JPEG (decoded ${img.width}x${img.height})`);
  }
  return { width: img.width, height: img.height, channels: 3, data: img.data };
}
