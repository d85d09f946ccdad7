/** Where an installed npm package lives, with an error that says how to install it. */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

export function packageDir(pkg: string, what: string): string {
  try {
    return dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(
      `${what} needs the npm package '${pkg}', which is not installed: run 'npm install ${pkg}'`,
    );
  }
}
