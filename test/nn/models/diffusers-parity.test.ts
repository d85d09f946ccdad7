/**
 * The models against diffusers' own numbers: every model fixture under the diffusers fixture set
 * (found by its `fixture.json`, not by folder name) through the parity runner's model kind, in
 * float64 and float32 on the CPU: forward output, gradients with respect to the inputs and the
 * named parameters, VAE encode/decode, and the 10-step DDIM run with the U-Net.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { cpuBackend } from '../../../src/engine/index.js';
import { findFixtures } from '../../../src/eval/parity/runner.js';
import {
  MODEL_F32_TOLERANCE,
  MODEL_F64_TOLERANCE,
  modelFixtureKind,
} from '../../../src/eval/parity/models.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, '../../../../shared/fixtures/diffusers');
const present = existsSync(FIXTURES);

const candidates = present
  ? (await findFixtures(FIXTURES)).filter((c) => modelFixtureKind.detect(c))
  : [];

void describe('diffusers model fixtures', () => {
  void it('finds the four model fixtures', () => {
    assert.ok(present, `no fixtures at ${FIXTURES}`);
    assert.ok(candidates.length >= 4, `found ${candidates.length}`);
  });

  for (const c of candidates) {
    for (const dtype of ['float64', 'float32'] as const) {
      void it(`${c.name} (${String(c.json['model_class'])}) in ${dtype}`, async (t) => {
        const records = await modelFixtureKind.run(c, { backend: cpuBackend(), dtype });
        const tol = dtype === 'float64' ? MODEL_F64_TOLERANCE : MODEL_F32_TOLERANCE;
        for (const r of records) {
          t.diagnostic(`${r.name}: ${r.metric} ${r.error.toExponential(2)}`);
          if (r.metric === 'rel-l2') assert.equal(r.tolerance, tol);
        }
        const failed = records.filter((r) => !r.ok);
        assert.deepEqual(
          failed.map((r) => `${r.name}: ${r.error}`),
          [],
          `records over tolerance in ${c.name}`,
        );
        assert.ok(
          records.some((r) => r.name === 'output' || r.name === 'decode/output'),
          `${c.name}: the output is compared`,
        );
      });
    }
  }
});
