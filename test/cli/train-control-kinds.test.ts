/**
 * `sumi train --controlnet --control KIND`: the kind is kept in the run's config (and named in
 * the sampling hint), an unknown one on the command line is a usage error, and a checkpoint whose
 * stored kind is unknown is refused on --resume in one line.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { writeTinyModel } from '../../src/eval/test-models.js';
import { assertCleanError, cliFixture, sumiInProcess as sumi } from './run-sumi.js';

const fx = cliFixture('sumi-control-kinds-');

const run = (base: string, out: string, extra: string[]): string[] => [
  'train',
  '--controlnet',
  '--base',
  base,
  '--data',
  'mnist',
  '--batch',
  '2',
  '--save-every',
  '1',
  '--sample-every',
  '0',
  '--out',
  out,
  ...extra,
];

void describe('sumi train --control', () => {
  void test('keeps the kind in the config; refuses unknown kinds, given or stored', async () => {
    const base = await writeTinyModel(fx.file('base'), { classes: null });
    const out = fx.file('cn');
    const r = await sumi(run(base, out, ['--control', 'mask', '--steps', '1']));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /--control-image mask\.png/);
    const statePath = join(out, 'checkpoint', 'trainer_state.json');
    const state = JSON.parse(await readFile(statePath, 'utf8')) as {
      config: { controlnet: { control: string } };
    };
    assert.equal(state.config.controlnet.control, 'mask');

    const bad = await sumi(run(base, fx.file('bad'), ['--control', 'depth', '--steps', '1']));
    assertCleanError(bad, 2, /--control: 'depth' is not one of edges, canny, mask/);

    state.config.controlnet.control = 'depth';
    await writeFile(statePath, JSON.stringify(state));
    const resumed = await sumi(run(base, out, ['--control', 'mask', '--steps', '2', '--resume']));
    assertCleanError(resumed, 2, /these differ: controlnet .*"control":"depth"/);
  });
});
