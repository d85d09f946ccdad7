/**
 * JPEG decoding through the `jpeg-js` package (baseline and progressive, 8-bit).
 *
 * Hand-written here: a walk over the markers up to the first scan that reads the frame size first,
 * because jpeg-js allocates every 8x8 block of the size the frame header claims (about 350 bytes
 * per 64 pixels) before it reads any image data, and accepts a file with no scan at all.
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

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** Start-of-frame markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC). */
function isFrameMarker(m: number): boolean {
  return m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
}

/**
 * Checks the frame size against the file size before jpeg-js allocates for it, and that a scan
 * follows. Layouts this walk does not follow are left to jpeg-js, which reports them.
 */
function checkFrame(bytes: Uint8Array, fail: (msg: string) => ImageDecodeError): void {
  let pos = 2;
  let size: [number, number] | null = null;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) return; // not at a marker: left to jpeg-js
    const m = bytes[pos + 1]!;
    if (m === 0xff) {
      pos++; // fill byte
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      pos += 2; // markers without a length
      continue;
    }
    if (m === 0xd9) break;
    if (m === 0xda) {
      if (size === null) return; // a scan before the frame header: left to jpeg-js
      const [width, height] = size;
      if (width === 0 || height === 0) throw fail(`bad image size ${width}x${height}`);
      if (width * height > FREE_PIXELS + MAX_PIXELS_PER_BYTE * bytes.length) {
        throw fail(
          `corrupt JPEG (the frame header claims ${width}x${height}, more than ` +
            `${bytes.length} bytes can encode)`,
        );
      }
      return;
    }
    if (isFrameMarker(m) && pos + 9 <= bytes.length) {
      size = [(bytes[pos + 7]! << 8) | bytes[pos + 8]!, (bytes[pos + 5]! << 8) | bytes[pos + 6]!];
    }
    pos += 2 + ((bytes[pos + 2]! << 8) | bytes[pos + 3]!);
  }
  throw fail('corrupt JPEG (no image data: the file ends before the first scan)');
}

/**
 * Decodes a JPEG file to 8-bit RGB (gray JPEGs too). `name` starts every error message; errors
 * are `ImageDecodeError`s.
 */
export function decodeJpeg(bytes: Uint8Array, name = 'JPEG image'): RawImage {
  const fail = (msg: string): ImageDecodeError => new ImageDecodeError(`${name}: ${msg}`);
  if (!isJpeg(bytes)) throw fail('not a JPEG file (bad signature)');
  checkFrame(bytes, fail);
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
    throw fail(`corrupt JPEG (${e instanceof Error ? e.message : String(e)})`);
  }
  if (img.width < 1 || img.height < 1 || img.data.length !== img.width * img.height * 3) {
    throw fail(`corrupt JPEG (decoded ${img.width}x${img.height})`);
  }
  return { width: img.width, height: img.height, channels: 3, data: img.data };
}
