// The native/* tolerance of a scheduler fixture follows the case's own diffusers float32-vs-float64
// gap: max(1e-5, 2 × gap), said in the output. A case whose float32 result is 3e-5 away (as a long
// σ range can make it) passes when the fixture records such a gap, and fails at 1e-5 when it does not.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { nativeTolerance, runParity } from '../../src/eval/index.js';

const SCHEDULERS = fileURLToPath(
  new URL('../../../shared/fixtures/diffusers/schedulers/', import.meta.url),
);
const CASE = 'ddim_eta0_linear_eps';
const FINAL = 'native/n10/final_sample';

/** The case's tensors with diffusers' float32 final sample scaled by 1 + ε. */
function perturbedTensors(eps: number): Buffer {
  const bytes = readFileSync(join(SCHEDULERS, `${CASE}.safetensors`));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const entry = header[FINAL]!;
  assert.equal(entry.dtype, 'F64');
  const out = Buffer.from(bytes);
  const base = 8 + headerLength;
  for (let at = base + entry.data_offsets[0]; at < base + entry.data_offsets[1]; at += 8) {
    out.writeDoubleLE(out.readDoubleLE(at) * (1 + eps), at);
  }
  return out;
}

/** The case in a scratch folder, its recorded gap replaced. */
async function run(gap: number): Promise<{ ok: boolean; lines: string[]; tolerance: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'sumi-parity-native-'));
  try {
    const json = JSON.parse(readFileSync(join(SCHEDULERS, `${CASE}.json`), 'utf8')) as {
      native: Record<string, unknown>;
    };
    json.native.final_sample_rel_l2_vs_f64 = gap;
    writeFileSync(join(dir, `${CASE}.json`), JSON.stringify(json));
    writeFileSync(join(dir, `${CASE}.safetensors`), perturbedTensors(3e-5));
    const lines: string[] = [];
    const summary = await runParity(dir, { log: (l) => lines.push(l), verbose: true });
    const f = summary.fixtures[0]!;
    const final = f.records.find((r) => r.name === FINAL)!;
    assert.ok(final.error > 2.9e-5 && final.error < 3.1e-5, `final sample error ${final.error}`);
    return { ok: f.ok, lines, tolerance: final.tolerance };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void describe('native/* tolerance of scheduler fixtures', () => {
  void test('max(1e-5, 2 × the recorded gap)', () => {
    assert.deepEqual(nativeTolerance(6.9e-8), { tolerance: 1e-5 });
    assert.deepEqual(nativeTolerance(undefined), { tolerance: 1e-5 });
    const wide = nativeTolerance(2e-5);
    assert.equal(wide.tolerance, 4e-5);
    assert.match(wide.note ?? '', /2 × diffusers' float32-vs-float64 gap 2\.00e-5/);
  });

  void test('a case 3e-5 from diffusers float32 passes with a recorded gap of 2e-5, not of 1e-6', async () => {
    const wide = await run(2e-5);
    assert.equal(wide.tolerance, 4e-5);
    assert.ok(wide.ok, wide.lines.join('\n'));
    assert.match(
      wide.lines.join('\n'),
      /ok {3}native\/n10\/final_sample: rel-l2 3\.00e-5 \(tol 4\.00e-5 = 2 × diffusers' float32-vs-float64 gap 2\.00e-5\)/,
    );
    assert.match(wide.lines[0]!, /^PASS .*\(tol 4\.00e-5 = 2 × diffusers' float32-vs-float64 gap/);
    const narrow = await run(1e-6);
    assert.equal(narrow.tolerance, 1e-5);
    assert.ok(!narrow.ok, narrow.lines.join('\n'));
    assert.match(
      narrow.lines.join('\n'),
      /FAIL native\/n10\/final_sample: rel-l2 3\.00e-5 \(tol 1\.00e-5\)/,
    );
  });
});
