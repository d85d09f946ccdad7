// The package's core entry point ('sumi', src/index.ts) must load in a browser bundle: nothing it
// reaches imports a Node built-in or a Node-only package. The checker itself is tested on small
// import graphs, so that a clean report means something.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { checkBrowserSafe } from '../../scripts/browser-safe.mjs';

void describe('browser-safe entry point', () => {
  void test('src/index.ts reaches no Node-only import', () => {
    const { modules, findings, runtime } = checkBrowserSafe('src/index.ts');
    assert.deepEqual(findings, []);
    // The core reaches every layer it exports: sampling, models from bytes, the WebGPU backend.
    for (const m of [
      'src/diffusion/generate.ts',
      'src/nn/models/create.ts',
      'src/nn/state-dict.ts',
      'src/data/tokenizer.ts',
      'src/engine/backends/webgpu/gpu-device.ts',
    ]) {
      assert.ok(modules.includes(m), `${m} not reached from src/index.ts`);
    }
    // Dawn is the one package loaded at run time (in Node only), through a bundler-ignored import.
    assert.deepEqual(runtime, [
      { file: 'src/engine/backends/webgpu/gpu-device.ts', spec: 'DAWN_PACKAGE' },
    ]);
  });

  void test('src/node.ts is reported (it reads files)', () => {
    const { findings } = checkBrowserSafe('src/node.ts');
    const specs = new Set(findings.map((f) => f.spec));
    assert.ok(specs.has('node:fs/promises'), [...specs].join(', '));
    assert.ok(
      findings.some((f) => f.file === 'src/nn/safetensors-fs.ts'),
      'safetensors-fs.ts not reported',
    );
  });
});

void describe('the checker', () => {
  let dir = '';
  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  void test('follows relative imports and sorts out each kind of import', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sumi-browser-safe-'));
    const files: Record<string, string> = {
      'entry.ts': [
        "import { a } from './a.js';",
        "import type { Stats } from 'node:fs';", // erased
        "export * from './b.js';",
        'export const x = (s: Stats | null) => [a, s];',
      ].join('\n'),
      'a.ts': [
        "import { inflate } from 'node:zlib';",
        "import { decode } from 'fast-png';",
        'export const a = [inflate, decode];',
      ].join('\n'),
      'b.ts': [
        "const name = 'webgpu';",
        'export const lazy = () => import(/* @vite-ignore */ name);',
        'export const bad = () => import(name);',
        "export const pkg = () => import('left-pad');",
      ].join('\n'),
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const r = checkBrowserSafe('entry.ts', dir);
    assert.deepEqual(r.modules, ['a.ts', 'b.ts', 'entry.ts']);
    assert.deepEqual(r.findings.map((f) => [f.file, f.spec, f.reason]).sort(), [
      ['a.ts', 'node:zlib', 'Node built-in'],
      ['b.ts', '(computed)', 'computed import specifier'],
      ['b.ts', 'left-pad', 'package not known to be browser-safe'],
    ]);
    assert.deepEqual(r.runtime, [{ file: 'b.ts', spec: 'name' }]);
  });
});
