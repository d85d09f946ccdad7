/**
 * Text corpora from files: `fortunes` (the Debian package `fortunes`, BSD licence: the fortune
 * files in /usr/share/games/fortunes/, entries separated by lines holding only '%'), or a user's
 * text file or folder of text files. The corpus itself: text-corpus.ts.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import {
  buildTextCorpus,
  EmptyCorpusError,
  splitFortunes,
  type TextCorpus,
  type TextCorpusOptions,
} from './text-corpus.js';
import { TokenizerError } from './tokenizer.js';

export const FORTUNES_DIR = '/usr/share/games/fortunes';

/** The corpus names `loadTextCorpus` knows besides paths. */
export const TEXT_CORPORA = ['fortunes'] as const;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The texts of one file: its fortune entries when it has '%' separator lines, else its lines. */
async function fileTexts(path: string): Promise<string[]> {
  let text: string;
  try {
    text = utf8.decode(await readFile(path));
  } catch (e) {
    throw new TokenizerError(
      `${path}: ${e instanceof TypeError ? 'not UTF-8 text' : 'cannot read'}`,
    );
  }
  return /^%[ \t]*$/m.test(text) ? splitFortunes(text) : text.split(/\r?\n/);
}

/** The text files of a folder, by name: no hidden files, no strfile indexes (.dat). */
async function folderFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && !e.name.startsWith('.') && !e.name.endsWith('.dat'))
    .map((e) => e.name)
    .sort();
  return names.map((n) => join(dir, n));
}

/**
 * The corpus `spec` names: `fortunes`, a text file (fortune entries or one text per line), or a
 * folder of such files. Throws EmptyCorpusError when it has no usable sentence.
 */
export async function loadTextCorpus(
  spec: string,
  opts: TextCorpusOptions = {},
): Promise<TextCorpus> {
  let files: string[];
  if (spec === 'fortunes') {
    if (!existsSync(FORTUNES_DIR)) {
      throw new TokenizerError(
        `fortunes: ${FORTUNES_DIR} does not exist; install the Debian package 'fortunes' ` +
          `(as root: apt-get install fortunes)`,
      );
    }
    files = await folderFiles(FORTUNES_DIR);
  } else {
    let st;
    try {
      st = await stat(spec);
    } catch {
      throw new TokenizerError(
        `${spec}: no such file or folder (a corpus is ${TEXT_CORPORA.join(', ')}, a text file or a folder of them)`,
      );
    }
    files = st.isDirectory() ? await folderFiles(spec) : [spec];
  }
  if (files.length === 0) throw new EmptyCorpusError(`${spec}: no text files (an empty corpus)`);
  const texts: string[] = [];
  for (const f of files) texts.push(...(await fileTexts(f)));
  return buildTextCorpus(spec, texts, opts);
}
