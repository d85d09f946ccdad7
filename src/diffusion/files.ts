/** The file-system checks the diffusion layer's readers share (Node only). */
import { stat } from 'node:fs/promises';

/** Whether `path` is a regular file (false when it is missing or cannot be read). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Whether `path` is a directory (false when it is missing or cannot be read). */
export async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
