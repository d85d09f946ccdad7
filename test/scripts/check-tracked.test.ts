// scripts/check-tracked.mjs on a small repository made here: a tracked source file that neither
// tsconfig names nor eslint lints is one line and exit 1, as is a test outside test/; data
// folders, untracked files and covered files pass.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';

const SCRIPT = resolve('scripts/check-tracked.mjs');

let repo: string;
before(async () => {
  repo = await mkdtemp(join(tmpdir(), 'sumi-check-tracked-'));
  const files: Record<string, string> = {
    'tsconfig.json': JSON.stringify({ include: ['src', 'test'] }),
    'web/tsconfig.json': JSON.stringify({ include: ['.'] }),
    // Lints JavaScript (eslint's default) except tools/.
    'eslint.config.mjs': "export default [{ ignores: ['tools/'] }];\n",
    'src/a.ts': 'export const a = 1;\n',
    'web/page.ts': 'export const b = 2;\n',
    'lib/linted.mjs': 'export const c = 3;\n',
    'docs/example.ts': 'export const d = 4;\n',
    'tools/stray.mjs': 'export const e = 5;\n',
    'src/a.test.ts': 'export {};\n',
  };
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(repo, path)), { recursive: true });
    await writeFile(join(repo, path), text);
  }
  git('init', '-q');
  git('add', '.');
  await writeFile(join(repo, 'tools', 'untracked.mjs'), 'export const f = 6;\n');
});
after(async () => {
  await rm(repo, { recursive: true, force: true });
});

function git(...args: string[]): void {
  const r = spawnSync('git', args, { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
}

function check(): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [SCRIPT], { cwd: repo, encoding: 'utf8' });
}

void describe('check-tracked', () => {
  void test('names each tracked file outside the checks, one line each, and exits 1', () => {
    const r = check();
    assert.equal(r.status, 1, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`);
    assert.deepEqual(r.stderr.trim().split('\n'), [
      'src/a.test.ts: a test outside test/ (run-tests.mjs looks in test/ only)',
      'tools/stray.mjs: neither type-checked (tsconfig.json, web/tsconfig.json) nor linted',
    ]);
  });

  void test('passes once the stray is linted and the test moved', async () => {
    await writeFile(join(repo, 'eslint.config.mjs'), 'export default [];\n');
    await mkdir(join(repo, 'test'), { recursive: true });
    git('mv', 'src/a.test.ts', 'test/a.test.ts');
    const r = check();
    assert.equal(r.status, 0, `exit code (stderr: ${r.stderr})`);
    assert.match(r.stdout, /^check-tracked: 6 tracked source files, each checked$/m);
  });
});
