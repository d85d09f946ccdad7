// Safetensors files on disk (Node): read a whole file, write one atomically. The format itself,
// from and to bytes, is safetensors.ts.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

import {
  parseSafetensors,
  serializeSafetensors,
  type SafetensorsFile,
  type TensorToWrite,
} from './safetensors.js';

/** Reads and parses a whole file (node:fs/promises); errors name `path`. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const bytes = await readFile(path);
  return parseSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/**
 * Writes a safetensors file atomically: the bytes go to `${path}.tmp-<pid>-<random>`, which is
 * fsynced and then renamed over `path`. Invalid input is rejected before the file system is
 * touched; on any failure the temporary file is removed and `path` is left as it was.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let handle: FileHandle | undefined;
  let created = false;
  try {
    handle = await open(tmp, 'wx', 0o644); // 'wx': never clobber an existing file
    created = true;
    await handle.writeFile(bytes);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
  } catch (err) {
    try {
      await handle?.close();
      if (created) await rm(tmp, { force: true });
    } catch {
      // Best effort: the original error is the one worth reporting.
    }
    throw err;
  }
  // Persist the rename itself. Not every platform can fsync a directory (Windows), so this is
  // best effort; the data is already durable.
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // ignore
  }
}
