/**
 * The whole diffusers fixture set (schedulers and models) on the WebGPU backend, in float32 at
 * the fixtures' float32 tolerances: the check that every model runs there as it does on the CPU.
 */
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { runParity } from '../../../src/eval/parity/index.js';
import { setupGpu } from './setup.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURES = resolve(ROOT, '../shared/fixtures/diffusers');

void describe('diffusers fixtures on webgpu', async () => {
  const gpu = await setupGpu();
  void it(
    'every scheduler and model fixture passes in float32',
    { skip: gpu === null },
    async () => {
      const lines: string[] = [];
      const summary = await runParity(FIXTURES, {
        backend: gpu!,
        dtype: 'float32',
        log: (l) => lines.push(l),
      });
      const failed = lines.filter((l) => l.startsWith('FAIL'));
      assert.deepEqual(failed, [], lines.join('\n'));
      const models = summary.fixtures.filter((f) => f.kind === 'model');
      assert.equal(
        models.length,
        4,
        `model fixtures found: ${models.map((f) => f.name).join(', ')}`,
      );
      assert.equal(summary.failed, 0, 'no fixture failed');
    },
  );
});
