/**
 * What Sumi writes is what diffusers writes: each model folder of the diffusers fixtures, loaded
 * and saved again, gives the same config.json object and a weights file with the same tensor
 * names, shapes, dtypes, bytes and metadata, so diffusers' `from_pretrained` reads it as its own.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CONFIG_NAME, WEIGHTS_NAME } from '../../../src/nn/models/create.js';
import { loadModel, saveModel } from '../../../src/nn/models/io.js';
import { readSafetensors } from '../../../src/nn/safetensors-fs.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, '../../../../shared/fixtures/diffusers');
const dirs = existsSync(FIXTURES)
  ? readdirSync(FIXTURES).filter(
      (d) =>
        existsSync(join(FIXTURES, d, CONFIG_NAME)) && existsSync(join(FIXTURES, d, WEIGHTS_NAME)),
    )
  : [];
const tmp = await mkdtemp(join(tmpdir(), 'sumi-layout-'));
after(() => rm(tmp, { recursive: true, force: true }));

void describe('diffusers folder layout', () => {
  void it('finds the model fixture folders', () => {
    assert.ok(dirs.length >= 4, `found ${dirs.length} model folders at ${FIXTURES}`);
  });
  for (const d of dirs) {
    void it(`${d}: load + save reproduces the folder`, async () => {
      const src = join(FIXTURES, d);
      const out = join(tmp, d);
      await saveModel(await loadModel(src), out);
      const read = async (dir: string) =>
        JSON.parse(await readFile(join(dir, CONFIG_NAME), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(await read(out), await read(src));
      const [a, b] = await Promise.all([
        readSafetensors(join(out, WEIGHTS_NAME)),
        readSafetensors(join(src, WEIGHTS_NAME)),
      ]);
      assert.deepEqual(a.metadata, b.metadata);
      assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
      for (const [name, e] of b.tensors) {
        const mine = a.tensors.get(name)!;
        assert.equal(mine.dtype, e.dtype, name);
        assert.deepEqual(mine.shape, e.shape, name);
        assert.deepEqual(mine.data, e.data, name);
      }
    });
  }
});
