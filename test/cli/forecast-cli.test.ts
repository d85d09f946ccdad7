/**
 * Forecasting on the command line, on a tiny model: `sumi train --task forecast` on a CSV file
 * writes a forecaster folder, `sumi forecast` a fan chart and the quantiles (past the end, and
 * with --evaluate over the test part against the baselines); bad series are one line with exit 2
 * and nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { decodePng } from '../../src/data/index.js';
import { assertInputError, sumiInProcess as sumi } from './run-sumi.js';

let dir = '';
const file = (name: string): string => join(dir, name);

/** n days of a weekly cycle (column `temp`), with `extra` appended to the CSV text. */
function csv(n: number, extra = ''): string {
  const rows = Array.from({ length: n }, (_, i) => {
    const day = new Date(Date.UTC(2022, 0, 1 + i)).toISOString().slice(0, 10);
    return `${day},${(15 + 4 * Math.sin((2 * Math.PI * i) / 7)).toFixed(3)},${i}`;
  });
  return `date,temp,count\n${rows.join('\n')}\n${extra}`;
}

const TINY = ['--context', '8', '--horizon', '4', '--layers', '1', '--hidden', '6'];
const SMALL = [
  '--residual-layers',
  '2',
  '--residual-channels',
  '4',
  '--batch',
  '4',
  '--rows',
  '16',
];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-forecast-cli-'));
  await writeFile(file('daily.csv'), csv(100));
});
after(() => rm(dir, { recursive: true, force: true }));

void describe('sumi train --task forecast, sumi forecast', () => {
  void test('trains, forecasts past the end and scores the test part', async () => {
    const model = file('model');
    const t = await sumi([
      'train',
      '--task',
      'forecast',
      '--data',
      file('daily.csv'),
      '--target',
      'temp',
      ...TINY,
      ...SMALL,
      '--steps',
      '3',
      '--save-every',
      '2',
      '--out',
      model,
    ]);
    assert.equal(t.code, 0, t.stderr);
    for (const f of ['config.json', 'diffusion_pytorch_model.safetensors', 'forecast.json']) {
      assert.ok(existsSync(join(model, f)), f);
    }
    const info = JSON.parse(readFileSync(join(model, 'forecast.json'), 'utf8')) as {
      steps: number;
      command: string;
    };
    assert.equal(info.steps, 3);
    assert.match(info.command, /^sumi train --task forecast --data /);

    const f = await sumi([
      'forecast',
      '--model',
      model,
      '--samples',
      '6',
      '--steps',
      '3',
      '--sampler',
      'ddim',
      '--out',
      file('f.png'),
    ]);
    assert.equal(f.code, 0, f.stderr);
    const png = decodePng(readFileSync(file('f.png')), 'f.png');
    assert.deepEqual([png.width, png.height], [800, 400]);
    const lines = readFileSync(file('f.csv'), 'utf8').trim().split('\n');
    assert.equal(lines[0], 'timestamp,target,mean,q0.05,q0.25,q0.5,q0.75,q0.95');
    assert.equal(lines.length, 1 + 4);
    // The first forecast row is the day after the last one of the file (2022-01-01 + 100 days).
    assert.match(lines[1]!, /^2022-04-11T00:00:00.000Z,temp,/);
    const q = lines[1]!.split(',').slice(3).map(Number);
    assert.deepEqual(
      [...q].sort((a, b) => a - b),
      q,
      'quantiles ascend',
    );

    const e = await sumi([
      'forecast',
      '--model',
      model,
      '--samples',
      '6',
      '--steps',
      '3',
      '--evaluate',
      '--baseline-steps',
      '5',
      '--metrics',
      file('m.json'),
      '--out',
      file('e.svg'),
    ]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /TimeGrad/);
    assert.match(e.stdout, /seasonal naive \(m = 7\)/);
    const m = JSON.parse(readFileSync(file('m.json'), 'utf8')) as {
      windows: number;
      scores: { method: string; metrics: { crps: number; coverage90: number } }[];
    };
    assert.equal(m.windows, 5); // the last 20 rows, every 4
    assert.deepEqual(
      m.scores.map((s) => s.method),
      ['TimeGrad', 'seasonal naive (m = 7)', 'Gaussian MLP'],
    );
    assert.ok(
      m.scores.every((s) => Number.isFinite(s.metrics.crps)),
      'finite CRPS',
    );
    assert.match(readFileSync(file('e.svg'), 'utf8'), /^<svg [^]*90% interval[^]*truth/);
  });

  void test('bad series: one line, exit 2, nothing written', async () => {
    await writeFile(file('empty.csv'), '');
    await writeFile(file('gap.csv'), csv(50).replace(/\n2022-01-05,[\d.]+,/, '\n2022-01-05,,'));
    const train = (data: string, more: string[] = []) =>
      sumi([
        'train',
        '--task',
        'forecast',
        '--data',
        data,
        ...TINY,
        ...SMALL,
        '--steps',
        '1',
        '--out',
        file('bad'),
        ...more,
      ]);
    assertInputError(
      await train(file('daily.csv'), ['--target', 'temperature']),
      /no target column 'temperature' \(columns: date, temp, count\)/,
      file('bad'),
    );
    assertInputError(
      await train(file('daily.csv'), ['--target', 'temp', '--horizon', '200']),
      /horizon 200 is longer than the series \(100 rows\)/,
      file('bad'),
    );
    assertInputError(
      await train(file('empty.csv'), ['--target', 'temp']),
      /empty\.csv: empty CSV/,
      file('bad'),
    );
    assertInputError(
      await train(file('gap.csv'), ['--target', 'temp']),
      /gap\.csv: row 6, column 'temp': missing value/,
      file('bad'),
    );
    assertInputError(await train(file('daily.csv')), /no target column given/, file('bad'));
    assertInputError(
      await sumi(['forecast', '--model', file('nope'), '--out', file('x.png')]),
      /no config\.json/,
      file('x.png'),
    );
  });
});
