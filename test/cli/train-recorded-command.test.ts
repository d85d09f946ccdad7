/**
 * `sumi train` records the command line that retrains its model in sumi.json, shell-quoted as
 * the other training commands record theirs (the run-control options dropped, --steps last).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { recordedCommand } from '../../src/cli/train-options.js';
import { cliFixture, trainTiny } from './run-sumi.js';

const fx = cliFixture('sumi-train-command-');

void describe('recorded command lines', () => {
  void test('recordedCommand quotes what a shell would split or expand', () => {
    assert.equal(
      recordedCommand('train-vae', ['--data', 'my images/', '--lr', '1e-3', "it's"]),
      `sumi train-vae --data 'my images/' --lr 1e-3 'it'\\''s'`,
    );
  });

  void test('sumi train writes the command and its arguments into sumi.json', async () => {
    const out = fx.file('run');
    const r = await trainTiny(fx, out, ['--backend', 'cpu', '--seed', '3']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(await readFile(join(out, 'checkpoint', 'sumi.json'), 'utf8')) as {
      command?: string;
      trainArgs?: string[];
    };
    assert.deepEqual(info.trainArgs, [
      '--data',
      'mnist',
      '--config',
      fx.config,
      '--seed',
      '3',
      '--batch',
      '4',
      '--save-every',
      '0',
      '--sample-every',
      '0',
      '--out',
      out,
      '--steps',
      '2',
    ]);
    assert.equal(info.command, recordedCommand('train', info.trainArgs));
    assert.match(info.command, /^sumi train --data mnist --config \S+ --seed 3 .* --steps 2$/);
  });
});
