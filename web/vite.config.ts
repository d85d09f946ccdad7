/**
 * The playground's Vite config: the page and its worker are built from web/ (TypeScript straight
 * from src/), and the shipped models in ../models are served at /models/ in development and
 * copied into the build.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { defineConfig, type Plugin } from 'vite';

import { MODELS } from './protocol.js';

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

function shippedModels(): Plugin {
  return {
    name: 'sumi-models',
    configureServer(server) {
      const files = new Set(modelFiles());
      server.middlewares.use('/models/', (req, res, next) => {
        const path = decodeURIComponent((req.url ?? '').split('?')[0]!.replace(/^\//, ''));
        if (!files.has(path)) return next();
        res.setHeader('Content-Type', 'application/octet-stream');
        res.end(readFileSync(join(MODELS_DIR, path)));
      });
    },
    generateBundle() {
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
