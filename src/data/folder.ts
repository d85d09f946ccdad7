/**
 * Any folder of PNG/JPEG images (searched recursively; files ending .png, .jpg or .jpeg in any
 * case; names starting with '.' skipped; symbolic links followed once). Files are taken in
 * sorted path order. When every image sits inside a subfolder of the root, the top-level subfolder
 * names (sorted) are the classes, like torchvision's ImageFolder; otherwise there are no labels.
 * Images are resized to cover the target size and centre-cropped (area filter to shrink, bilinear
 * to enlarge), see image-files.ts.
 */
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

import { sizePair } from './dataset.js';
import type { Rgb } from './image/image.js';
import { type ImageFileEntry, ImageFileDataset } from './image-files.js';

export interface FolderOptions {
  /** Output size (default 64). */
  size?: number | readonly [number, number];
  /** 3 (RGB, default) or 1 (gray). */
  channels?: 1 | 3;
  /** Colour under transparent pixels, RGB in [0, 1] (default white). */
  background?: Rgb;
}

const IMAGE_FILE = /\.(png|jpe?g)$/i;

/** Image files under root, sorted. */
export function findImages(root: string): string[] {
  let st;
  try {
    st = statSync(root);
  } catch {
    throw new Error(`dataset folder '${root}' does not exist`);
  }
  if (!st.isDirectory()) throw new Error(`'${root}' is not a folder`);
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (dir: string): void => {
    const real = realpathSync(dir);
    if (seen.has(real)) return; // a link back into a folder already walked
    seen.add(real);
    const names = readdirSync(dir).sort();
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const p = join(dir, name);
      let s;
      try {
        s = statSync(p);
      } catch {
        continue; // a dangling link
      }
      if (s.isDirectory()) walk(p);
      else if (s.isFile() && IMAGE_FILE.test(name)) out.push(p);
    }
  };
  walk(root);
  return out;
}

export function loadImageFolder(root: string, opts: FolderOptions = {}): ImageFileDataset {
  const files = findImages(root);
  if (files.length === 0) throw new Error(`dataset folder '${root}' has no PNG or JPEG images`);
  const top = files.map((f) => relative(root, f).split(sep));
  const labelled = top.every((parts) => parts.length > 1);
  const classNames = labelled ? [...new Set(top.map((parts) => parts[0]!))].sort() : undefined;
  const entries: ImageFileEntry[] = files.map((path, i) => {
    const name = relative(root, path);
    return classNames === undefined
      ? { path, name }
      : { path, name, label: classNames.indexOf(top[i]![0]!) };
  });
  const [height, width] = sizePair(opts.size ?? 64);
  return new ImageFileDataset(entries, {
    name: root,
    height,
    width,
    channels: opts.channels ?? 3,
    background: opts.background,
    classNames,
  });
}
