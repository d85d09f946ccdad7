/** Decoding image bytes: the format is sniffed from the first bytes, not the file name. */
import { ImageDecodeError, type RawImage } from './image.js';
import { decodeJpeg, isJpeg } from './jpeg.js';
import { decodePng, isPng } from './png.js';

/** Decodes PNG or JPEG bytes; `name` (the file) starts every error message. */
export function decodeImage(bytes: Uint8Array, name = 'image'): RawImage {
  if (isPng(bytes)) return decodePng(bytes, name);
  if (isJpeg(bytes)) return decodeJpeg(bytes, name);
  if (bytes.length === 0) throw new ImageDecodeError(`${name}: empty file`);
  throw new ImageDecodeError(`${name}: not a PNG or JPEG file (unrecognized signature)`);
}
