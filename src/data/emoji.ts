/**
 * Colour emoji from the npm package `emoji-datasource-google` (github.com/iamcal/emoji-data,
 * Noto Color Emoji artwork). `emoji.json` lists 1,911 emoji (v16.0.0) with `image` (file name),
 * `short_name`, `category`, `sort_order` and `has_img_google`; `categories.json` orders the 10
 * categories ('Smileys & Emotion', 'People & Body', 'Component', 'Animals & Nature',
 * 'Food & Drink', 'Travel & Places', 'Activities', 'Objects', 'Symbols', 'Flags'). Images are
 * 64x64 PNGs in `img/google/64/` (RGBA, a few gray+alpha and palette); skin-tone variants have
 * their own files there but are not part of this dataset.
 *
 * Samples are the base emoji in `sort_order`, composited over a background (white by default),
 * labelled with their category index; `name` is the short name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { sizePair } from './dataset.js';
import type { Rgb } from './image/image.js';
import { type ImageFileEntry, ImageFileDataset } from './image-files.js';
import { packageDir } from './packages.js';

export interface EmojiOptions {
  /** Output size (default 64, the files' size). */
  size?: number | readonly [number, number];
  /** 3 (RGB, default) or 1 (gray). */
  channels?: 1 | 3;
  /** Colour under transparent pixels, RGB in [0, 1] (default white). */
  background?: Rgb;
}

interface EmojiRecord {
  image: string;
  short_name: string;
  category: string;
  sort_order: number;
  has_img_google?: boolean;
}

export function loadEmoji(opts: EmojiOptions = {}): ImageFileDataset {
  const root = packageDir('emoji-datasource-google', 'the emoji dataset');
  const readJson = (file: string): unknown => {
    try {
      return JSON.parse(readFileSync(join(root, file), 'utf8'));
    } catch (e) {
      throw new Error(`${join(root, file)}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const records = readJson('emoji.json') as EmojiRecord[];
  const categories = Object.keys(readJson('categories.json') as Record<string, unknown>);
  const list = records
    .filter((r) => r.has_img_google === true)
    .sort((a, b) => a.sort_order - b.sort_order);
  for (const r of list) if (!categories.includes(r.category)) categories.push(r.category);
  const entries: ImageFileEntry[] = list.map((r) => ({
    path: join(root, 'img', 'google', '64', r.image),
    label: categories.indexOf(r.category),
    name: r.short_name,
  }));
  if (entries.length === 0)
    throw new Error(`${join(root, 'emoji.json')}: no emoji with Google images`);
  const [height, width] = sizePair(opts.size ?? 64);
  return new ImageFileDataset(entries, {
    name: 'emoji',
    height,
    width,
    channels: opts.channels ?? 3,
    background: opts.background,
    classNames: categories,
  });
}
