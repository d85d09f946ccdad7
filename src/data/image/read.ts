/** Reading image files: the format is sniffed from the first bytes, not the file name. */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

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

export function readImageSync(path: string): RawImage {
  return decodeImage(
    readBytes(() => readFileSync(path), path),
    path,
  );
}

export async function readImage(path: string): Promise<RawImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  return decodeImage(bytes, path);
}

function readBytes(read: () => Uint8Array, path: string): Uint8Array {
  try {
    return read();
  } catch (e) {
    throw new Error(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
}
