/** The file-system checks the diffusion layer's readers share (Node only). */
import { readFile, stat } from 'node:fs/promises';

/** Whether `path` is a regular file (false when it is missing or cannot be read). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * The parsed JSON of the file `path`; one that cannot be read or is not JSON throws a `Failure`
 * `<path>: cannot read (<why>)`.
 */
export async function readJsonFile(
  path: string,
  Failure: new (message: string) => Error,
): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch (e) {
    throw new Failure(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
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
