/**
 * The checks of the folders a command writes, before any model is read: `sumi export` and
 * `sumi lora merge` need --model and --out and refuse a folder that is not empty without --force;
 * `sumi train-classifier` and `sumi train --task text` refuse an --export folder that is not empty.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { assertCleanError, sumiInProcess as sumi } from './run-sumi.js';

let dir = '';
let full = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-output-folders-'));
  full = join(dir, 'full');
  await mkdir(full);
  await writeFile(join(full, 'x.txt'), 'x');
});
after(() => rm(dir, { recursive: true, force: true }));

void test('export: --model and --out are required, in that order', async () => {
  assertCleanError(await sumi(['export']), 2, /^sumi export: --model <dir> is required\n/);
  assertCleanError(
    await sumi(['export', '--model', 'm']),
    2,
    /^sumi export: --out <dir> is required\n/,
  );
});

void test('export: a folder that is not empty is refused without --force (exit 1)', async () => {
  const r = await sumi(['export', '--model', join(dir, 'none'), '--out', full]);
  assertCleanError(r, 1, /^sumi export: .*full is not empty \(pass --force to write into it\)\n$/);
});

void test('lora merge: --lora is asked for before --out is looked at', async () => {
  assertCleanError(
    await sumi(['lora', 'merge', '--out', full]),
    2,
    /^sumi lora merge: --model <dir> is required\n/,
  );
  assertCleanError(
    await sumi(['lora', 'merge', '--model', 'm', '--out', full]),
    2,
    /^sumi lora merge: --lora FILE\[:S\] is required\n/,
  );
  const r = await sumi(['lora', 'merge', '--model', 'm', '--lora', 'a.safetensors', '--out', full]);
  assertCleanError(r, 1, /full is not empty \(pass --force to write into it\)\n$/);
});

void test('train-classifier and train --task text: an --export folder that is not empty', async () => {
  const out = join(dir, 'run');
  for (const argv of [
    ['train-classifier', '--out', out, '--export', full],
    ['train', '--task', 'text', '--out', out, '--export', full],
  ]) {
    const r = await sumi(argv);
    assertCleanError(r, 2, /: --export: .*full is not empty\n/);
    assert.equal(r.stdout, '');
  }
});
