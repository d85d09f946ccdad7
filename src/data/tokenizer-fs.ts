/**
 * A `tokenizer/` folder as Hugging Face tokenizers write it: tokenizer.json and
 * tokenizer_config.json. The tokenizer itself, and parsing those files' texts: tokenizer.ts.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { writeTextAtomic } from '../nn/models/index.js';
import {
  parseTokenizer,
  parseTokenizerFile,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  TokenizerError,
  type WordLevelTokenizer,
} from './tokenizer.js';

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created), each atomically. */
export async function saveTokenizer(tok: WordLevelTokenizer, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeTextAtomic(join(dir, TOKENIZER_FILE), tok.tokenizerJson());
  await writeTextAtomic(join(dir, TOKENIZER_CONFIG_FILE), tok.tokenizerConfigJson());
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readText(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch {
    throw new TokenizerError(`${path}: missing`);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TokenizerError(`${path}: not UTF-8 text`);
  }
}

/**
 * Reads a tokenizer folder written by `saveTokenizer` (or by `tokenizers` with the same
 * pipeline); see parseTokenizer.
 */
export async function loadTokenizer(dir: string): Promise<WordLevelTokenizer> {
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new TokenizerError(`${dir}: no such tokenizer folder`);
  }
  if (!st.isDirectory()) {
    throw new TokenizerError(`${dir}: not a folder (expected a tokenizer folder)`);
  }
  const path = join(dir, TOKENIZER_FILE);
  const tokenizerJson = await readText(path);
  let configJson: string;
  try {
    configJson = await readText(join(dir, TOKENIZER_CONFIG_FILE));
  } catch (e) {
    parseTokenizerFile(tokenizerJson, path); // report tokenizer.json's own fault first
    throw e;
  }
  return parseTokenizer(tokenizerJson, configJson, dir);
}
