/** Reading image files: the format is sniffed from the first bytes, not the file name. */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

import { decodeImage } from './decode.js';
import type { RawImage } from './image.js';

export function readImageSync(path: string): RawImage {
  return decodeImage(
    readBytes(() => readFileSync(path), path),
    path,
  );
}

export async function readImage(path: string): Promise<RawImage> {
  const bytes = await readFile(path).catch((e: unknown) => {
    throw cannotRead(path, e);
  });
  return decodeImage(bytes, path);
}

function readBytes(read: () => Uint8Array, path: string): Uint8Array {
  try {
    return read();
  } catch (e) {
    throw cannotRead(path, e);
  }
}

/** The error of a file that cannot be read: `<path>: cannot read (<why>)`. */
function cannotRead(path: string, e: unknown): Error {
  return new Error(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
}
