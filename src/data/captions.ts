/**
 * Captions for text-to-image training (the y of τ_θ(y) in latent diffusion): for each sample of a
 * dataset, the texts it may be shown with, plus canonical prompts for evaluation grids.
 *
 * - MNIST: the digit's word and numeral in a few templates ("a handwritten seven", "7", ...).
 * - Fashion-MNIST: the class as a noun phrase in a few templates ("a photo of an ankle boot").
 * - emoji: the emoji's Unicode name ("grinning face"), "<name> emoji", and its short names
 *   ("grinning"); `emoji-datasource-google`'s emoji.json has no keyword lists, so the short names
 *   are the only keywords there are.
 * - image folders: `captions.jsonl` in the folder, one `{"file": "sub/a.png", "text": "..."}` per
 *   line (`file_name`, the Hugging Face ImageFolder key, is read too), and `.txt` sidecars
 *   (`sub/a.png` → `sub/a.txt`, each non-empty line one caption). Both may be used together; an
 *   image's candidates are its jsonl captions in file order, then its sidecar lines.
 *
 * A trainer picks one candidate per sample with a uniform u: `list[Math.floor(u * list.length)]`.
 * Captions are trimmed of surrounding white space and are never empty; the empty prompt "" is the
 * unconditional one of classifier-free guidance and is the trainer's to substitute.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, posix, sep } from 'node:path';

import { checkIndex, type Dataset } from './dataset.js';
import { ImageFileDataset } from './image-files.js';
import { packageDir } from './packages.js';

export interface CaptionSource {
  /** The dataset's name. */
  readonly name: string;
  /** The dataset's length. */
  readonly length: number;
  /** The captions sample i may be shown with: at least one, none empty. */
  candidates(i: number): readonly string[];
  /** Every distinct caption, each once, in a fixed order: the tokenizer's training text. */
  all(): Iterable<string>;
  /** A few canonical prompts for evaluation (one per class where there are classes). */
  readonly prompts: readonly string[];
}

export interface CaptionOptions {
  /**
   * Image folders: every image must have a caption (default true). With false, an image without
   * one gets the empty caption "" (trained as unconditional).
   */
  requireAll?: boolean;
}

// ---- class captions -----------------------------------------------------------------------------

export const MNIST_WORDS = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
] as const;

/** "an" before a vowel sound; the words here are the digit words and Fashion-MNIST nouns. */
function withArticle(word: string): string {
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

/** The captions of MNIST digit `label`; the first is the canonical prompt. */
export function mnistCaptions(label: number): readonly string[] {
  const w = MNIST_WORDS[label];
  if (w === undefined) throw new Error(`mnist: label ${label} is not a digit 0..9`);
  return [
    `a handwritten ${w}`,
    `the digit ${w}`,
    `the number ${w}`,
    w,
    `a drawing of ${withArticle(w)}`,
    String(label),
    `a handwritten ${label}`,
  ];
}

/** Fashion-MNIST's classes (FASHION_MNIST_CLASSES order) as a noun phrase and a bare noun. */
const FASHION_PHRASES: readonly (readonly [phrase: string, noun: string])[] = [
  ['a t-shirt', 't-shirt'],
  ['a pair of trousers', 'trousers'],
  ['a pullover', 'pullover'],
  ['a dress', 'dress'],
  ['a coat', 'coat'],
  ['a sandal', 'sandal'],
  ['a shirt', 'shirt'],
  ['a sneaker', 'sneaker'],
  ['a bag', 'bag'],
  ['an ankle boot', 'ankle boot'],
];

/** The captions of Fashion-MNIST class `label`; the first is the canonical prompt. */
export function fashionMnistCaptions(label: number): readonly string[] {
  const p = FASHION_PHRASES[label];
  if (p === undefined) throw new Error(`fashion-mnist: label ${label} is not a class 0..9`);
  const [phrase, noun] = p;
  return [
    `a photo of ${phrase}`,
    phrase,
    `a picture of ${phrase}`,
    `a black and white photo of ${phrase}`,
    noun,
  ];
}

export type ClassCaptionDataset = 'mnist' | 'fashion-mnist';

const CLASS_CAPTIONS: Record<ClassCaptionDataset, (label: number) => readonly string[]> = {
  mnist: mnistCaptions,
  'fashion-mnist': fashionMnistCaptions,
};

/** The canonical prompt of a class: "a handwritten seven", "a photo of a sneaker". */
export function classPrompt(dataset: ClassCaptionDataset, label: number): string {
  return CLASS_CAPTIONS[dataset](label)[0]!;
}

/**
 * Whose class prompts a dataset takes, by its name: 'mnist' for mnist and mnist-full,
 * 'fashion-mnist' for fashion-mnist (both also with a split: 'fashion-mnist/train'), else null.
 */
export function classCaptionDataset(name: string): ClassCaptionDataset | null {
  const m = /^(mnist|mnist-full|fashion-mnist)(\/(train|test|all))?$/.exec(name);
  if (m === null || (m[1] === 'mnist' && m[2] !== undefined)) return null;
  return m[1] === 'fashion-mnist' ? 'fashion-mnist' : 'mnist';
}

/** The class-prompt dataset of `name`, 'emoji', or null. */
function namedKind(name: string): ClassCaptionDataset | 'emoji' | null {
  if (name === 'emoji') return 'emoji';
  return classCaptionDataset(name);
}

/**
 * Evaluation prompts of a named dataset without loading it: the ten class prompts of MNIST and
 * Fashion-MNIST, and for emoji the name of the first emoji of each category. Image folders have
 * theirs in `captionsFor(dataset).prompts`.
 */
export function defaultPrompts(datasetName: string): readonly string[] {
  const kind = namedKind(datasetName);
  if (kind === 'emoji') return emojiTable().prompts;
  if (kind !== null) return Array.from({ length: 10 }, (_, label) => classPrompt(kind, label));
  throw new Error(
    `no default prompts for dataset '${datasetName}' (known: mnist, mnist-full, fashion-mnist, emoji); ` +
      'for an image folder use captionsFor(dataset).prompts',
  );
}

/** Captions by class label; labels are read from the dataset once per index and kept. */
function classCaptionSource(
  ds: Dataset,
  captionsOf: (label: number) => readonly string[],
): CaptionSource {
  const numClasses = ds.numClasses ?? 10;
  const table = Array.from({ length: numClasses }, (_, label) => captionsOf(label));
  const labels = new Int16Array(ds.length).fill(-1);
  return {
    name: ds.name,
    length: ds.length,
    candidates(i: number): readonly string[] {
      checkIndex(ds, i);
      if (labels[i] === -1) {
        const label = ds.get(i).label;
        if (label === undefined || table[label] === undefined) {
          throw new Error(`${ds.name}: sample ${i} has no label in [0, ${numClasses})`);
        }
        labels[i] = label;
      }
      return table[labels[i]!]!;
    },
    all: () => distinct(table.flat()),
    prompts: table.map((list) => list[0]!),
  };
}

function distinct(texts: Iterable<string>): string[] {
  return [...new Set(texts)];
}

// ---- emoji --------------------------------------------------------------------------------------

interface EmojiRecord {
  name: string;
  short_name: string;
  short_names: string[];
  category: string;
  sort_order: number;
  has_img_google?: boolean;
}

interface EmojiTable {
  /** Captions by short name (emoji.ts names each sample by its `short_name`). */
  byShortName: Map<string, readonly string[]>;
  /** The name of the first emoji (in sort order) of each category. */
  prompts: string[];
}

let emojiCache: EmojiTable | null = null;

/** The captions of every emoji with a Google image, from the package's emoji.json. */
function emojiTable(): EmojiTable {
  if (emojiCache !== null) return emojiCache;
  const path = join(packageDir('emoji-datasource-google', 'emoji captions'), 'emoji.json');
  let records: EmojiRecord[];
  try {
    records = JSON.parse(readFileSync(path, 'utf8')) as EmojiRecord[];
  } catch (e) {
    throw new Error(`${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const byShortName = new Map<string, readonly string[]>();
  const firstOfCategory = new Map<string, string>();
  const list = records
    .filter((r) => r.has_img_google === true)
    .sort((a, b) => a.sort_order - b.sort_order);
  for (const r of list) {
    if (typeof r.name !== 'string' || typeof r.short_name !== 'string') {
      throw new Error(`${path}: emoji ${JSON.stringify(r.short_name)} has no name or short name`);
    }
    // 'GRINNING FACE' / 'Egypt Flag' → 'grinning face'; 'thumbs_up' → 'thumbs up'.
    const name = r.name.toLowerCase().trim();
    const shortNames = (r.short_names ?? [r.short_name]).map((s) => s.replace(/_/g, ' ').trim());
    byShortName.set(r.short_name, distinct([name, `${name} emoji`, ...shortNames]));
    if (!firstOfCategory.has(r.category)) firstOfCategory.set(r.category, name);
  }
  emojiCache = { byShortName, prompts: [...firstOfCategory.values()] };
  return emojiCache;
}

// ---- image folders --------------------------------------------------------------------------------

/** The file name of a folder's caption list. */
export const CAPTIONS_FILE = 'captions.jsonl';

/** `a\b.png` (a path relative to the folder, in the OS's form) as the jsonl writes it: `a/b.png`. */
function toPosix(rel: string): string {
  return sep === '/' ? rel : rel.split(sep).join('/');
}

function sidecarOf(rel: string): string {
  const dot = rel.lastIndexOf('.');
  return `${dot > rel.lastIndexOf('/') ? rel.slice(0, dot) : rel}.txt`;
}

/**
 * Reads the captions of the images `files` (paths relative to `root`, as the dataset names them)
 * from `root/captions.jsonl` and `.txt` sidecars. Returns one list per file, in `files` order;
 * an image without captions gets [""] when `requireAll` is false. Every problem is an error that
 * names the file and, for the jsonl, the line.
 */
export function readFolderCaptions(
  root: string,
  files: readonly string[],
  opts: CaptionOptions = {},
): string[][] {
  const keys = files.map(toPosix);
  const index = new Map<string, number>();
  keys.forEach((k, i) => index.set(k, i));
  const lists: string[][] = keys.map(() => []);
  let sources = 0;

  const jsonlPath = join(root, CAPTIONS_FILE);
  if (existsSync(jsonlPath)) {
    sources++;
    readCaptionsJsonl(jsonlPath, index, lists);
  }
  keys.forEach((key, i) => {
    const path = join(root, ...sidecarOf(key).split('/'));
    if (!existsSync(path) || !statSync(path).isFile()) return;
    sources++;
    const lines = captionLines(readFileSync(path, 'utf8'));
    if (lines.length === 0) throw new Error(`${path}: empty captions file`);
    lists[i]!.push(...lines);
  });

  if (sources === 0) {
    throw new Error(
      `${root}: no captions: write ${CAPTIONS_FILE} ({"file": "a.png", "text": "..."} per line) ` +
        'or a .txt file beside each image (a.png → a.txt)',
    );
  }
  const missing = keys.filter((_, i) => lists[i]!.length === 0);
  if (missing.length > 0) {
    if (opts.requireAll ?? true) {
      const shown = missing.slice(0, 3).join(', ') + (missing.length > 3 ? ', ...' : '');
      throw new Error(
        `${root}: ${missing.length} of ${keys.length} images have no caption (${shown}); ` +
          `add them to ${CAPTIONS_FILE} or write .txt sidecars, or allow uncaptioned images ` +
          '(requireAll: false) to train them with the empty caption',
      );
    }
    for (const list of lists) if (list.length === 0) list.push('');
  }
  return lists;
}

/** Non-empty trimmed lines (a leading byte-order mark dropped). */
function captionLines(text: string): string[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

function readCaptionsJsonl(path: string, index: Map<string, number>, lists: string[][]): void {
  const lines = readFileSync(path, 'utf8')
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/);
  let count = 0;
  lines.forEach((raw, k) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${path}:${k + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new Error(`${where}: expected an object {"file": "a.png", "text": "..."}`);
    }
    const rec = v as Record<string, unknown>;
    const file = rec.file ?? rec.file_name;
    if (typeof file !== 'string' || file.trim() === '') {
      throw new Error(`${where}: "file" must be the image's path relative to the folder`);
    }
    if (typeof rec.text !== 'string') {
      throw new Error(`${where}: "text" must be a string, got ${JSON.stringify(rec.text)}`);
    }
    const text = rec.text.trim();
    if (text === '') throw new Error(`${where}: empty text for '${file}'`);
    const key = posix.normalize(file.trim().replace(/\\/g, '/')).replace(/^\.\//, '');
    const i = index.get(key);
    if (i === undefined) {
      throw new Error(`${where}: '${file}' is not one of the folder's images`);
    }
    lists[i]!.push(text);
    count++;
  });
  if (count === 0) throw new Error(`${path}: empty captions file`);
}

/** Captions by sample name (an emoji's short name, an image's path in its folder). */
function namedCaptionSource(
  ds: Dataset,
  byName: (name: string) => readonly string[] | undefined,
  all: () => Iterable<string>,
  prompts: readonly string[],
): CaptionSource {
  return {
    name: ds.name,
    length: ds.length,
    candidates(i: number): readonly string[] {
      checkIndex(ds, i);
      const name = sampleName(ds, i);
      const list = byName(name);
      if (list === undefined) throw new Error(`${ds.name}: no captions for sample ${i} (${name})`);
      return list;
    },
    all,
    prompts,
  };
}

/** A sample's name without decoding its image where the dataset can say it directly. */
function sampleName(ds: Dataset, i: number): string {
  const name =
    ds instanceof ImageFileDataset ? (ds.entries[i]!.name ?? ds.entries[i]!.path) : ds.get(i).name;
  if (name === undefined) throw new Error(`${ds.name}: sample ${i} has no name`);
  return name;
}

/** Up to n items spread evenly over a list, first included. */
function spread<T>(list: readonly T[], n: number): T[] {
  if (list.length <= n) return [...list];
  return Array.from({ length: n }, (_, k) => list[Math.floor((k * list.length) / n)]!);
}

// ---- entry point ----------------------------------------------------------------------------------

/**
 * The captions of a dataset loaded by `loadDataset`: MNIST, Fashion-MNIST and emoji by name, and
 * an image folder (a dataset named by its folder's path) from its captions.jsonl and sidecars,
 * read and checked here, so a bad caption file fails before training starts.
 */
export function captionsFor(ds: Dataset, opts: CaptionOptions = {}): CaptionSource {
  const kind = namedKind(ds.name);
  if (kind === 'mnist' || kind === 'fashion-mnist') {
    return classCaptionSource(ds, CLASS_CAPTIONS[kind]);
  }
  if (kind === 'emoji') {
    const t = emojiTable();
    return namedCaptionSource(
      ds,
      (n) => t.byShortName.get(n),
      () => distinct([...t.byShortName.values()].flat()),
      t.prompts,
    );
  }
  if (existsSync(ds.name) && statSync(ds.name).isDirectory()) {
    const names = Array.from({ length: ds.length }, (_, i) => sampleName(ds, i));
    const lists = readFolderCaptions(ds.name, names, opts);
    const byName = new Map(names.map((n, i) => [n, lists[i]!]));
    const prompts = distinct(spread(lists, 8).map((l) => l[0]!)).filter((p) => p !== '');
    return namedCaptionSource(
      ds,
      (n) => byName.get(n),
      () => distinct(lists.flat()).filter((t) => t !== ''),
      prompts,
    );
  }
  throw new Error(
    `no captions for dataset '${ds.name}': captions come with mnist, mnist-full, fashion-mnist and emoji, ` +
      `and from ${CAPTIONS_FILE} or .txt sidecars in an image folder`,
  );
}
