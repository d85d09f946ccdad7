// The parity runner on the diffusers fixtures: as a library call and once as the CLI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { registerFixtureKind, runParity } from '../../src/eval/parity/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = resolve(ROOT, '../shared/fixtures/diffusers');
const SCHEDULERS = join(FIXTURES, 'schedulers');

const caseCount = (): number =>
  readdirSync(SCHEDULERS).filter((f) => f.endsWith('.safetensors')).length;

void describe('parity runner', () => {
  void it('passes every scheduler fixture at 1e-10 in float64', async () => {
    const lines: string[] = [];
    const summary = await runParity(SCHEDULERS, { log: (l) => lines.push(l) });
    const failed = summary.fixtures.filter((f) => !f.ok);
    assert.deepEqual(
      failed.map((f) => f.name),
      [],
      lines.filter((l) => !l.startsWith('PASS')).join('\n'),
    );
    assert.equal(summary.passed, caseCount());
    assert.equal(lines[lines.length - 1], `${caseCount()} passed, 0 failed`);
    for (const f of summary.fixtures) {
      assert.ok(f.records.length >= 20, `${f.name}: ${f.records.length} records`);
      const f64 = f.records.filter((r) => r.tolerance === 1e-10);
      assert.ok(
        f64.every((r) => r.error < 1e-13),
        `${f.name}: an f64 record above 1e-13`,
      );
    }
  });

  void it('reports a fixture that no kind understands as failed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sumi-parity-'));
    try {
      mkdirSync(join(dir, 'model'));
      writeFileSync(
        join(dir, 'model', 'fixture.json'),
        JSON.stringify({ model_class: 'NoSuchModel' }),
      );
      writeFileSync(join(dir, 'model', 'fixture.safetensors'), '');
      const lines: string[] = [];
      const summary = await runParity(dir, { log: (l) => lines.push(l) });
      assert.equal(summary.failed, 1);
      assert.equal(summary.fixtures[0]!.kind, null);
      assert.match(
        lines[0]!,
        /^FAIL model\/fixture: fixture kind not understood \(model_class NoSuchModel\)$/,
      );
      assert.equal(lines[lines.length - 1], '0 passed, 1 failed');
      const cli = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/parity.ts', dir], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      assert.notEqual(cli.status, 0);
      assert.match(cli.stdout, /^0 passed, 1 failed$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('is a registry of kinds driven by the files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sumi-parity-'));
    try {
      writeFileSync(join(dir, 'a.json'), JSON.stringify({ test_kind: 'ok' }));
      writeFileSync(join(dir, 'a.safetensors'), '');
      writeFileSync(join(dir, 'b.json'), JSON.stringify({ test_kind: 'boom' }));
      writeFileSync(join(dir, 'b.safetensors'), '');
      writeFileSync(join(dir, 'not-a-fixture.json'), '{}'); // no .safetensors beside it
      registerFixtureKind({
        name: 'test-kind',
        detect: (c) => typeof c.json['test_kind'] === 'string',
        run: (c) => {
          if (c.json['test_kind'] === 'boom') return Promise.reject(new Error('boom'));
          return Promise.resolve([
            { name: 'x', metric: 'rel-l2', error: 0, tolerance: 1e-10, ok: true },
          ]);
        },
      });
      const lines: string[] = [];
      const s = await runParity(dir, { log: (l) => lines.push(l) });
      assert.deepEqual(
        s.fixtures.map((f) => [f.name, f.kind, f.ok]),
        [
          ['a', 'test-kind', true],
          ['b', 'test-kind', false],
        ],
      );
      assert.match(lines.join('\n'), /FAIL b: error: boom/);
      assert.equal(lines[lines.length - 1], '1 passed, 1 failed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('runs as the CLI on the scheduler fixtures: exit code 0 and the summary line', () => {
    const cli = (dir: string): { status: number | null; stdout: string } => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/parity.ts', dir], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      return { status: r.status, stdout: r.stdout };
    };
    const ok = cli(SCHEDULERS);
    assert.equal(ok.status, 0, ok.stdout);
    assert.match(ok.stdout, new RegExp(`^${caseCount()} passed, 0 failed$`, 'm'));
  });
});
