#!/usr/bin/env node
// The `sumi` command. An installed package runs the compiled CLI in dist/. A checkout of the
// repository (src/ present) runs the TypeScript sources through tsx, so edits need no rebuild.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const compiled = new URL('../dist/cli/main.js', import.meta.url);

/** tsx's loader API, or null where tsx is not installed. */
async function tsx() {
  try {
    return await import('tsx/esm/api');
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND') return null;
    throw e;
  }
}

async function load() {
  const api = existsSync(source) ? await tsx() : null;
  if (api !== null) {
    api.register();
    return import(source.href);
  }
  if (!existsSync(compiled)) {
    console.error("sumi: dist/ is missing: run 'npm run build' in the package folder");
    process.exit(1);
  }
  return import(compiled.href);
}

const { main } = await load();
process.exitCode = await main(process.argv.slice(2));
