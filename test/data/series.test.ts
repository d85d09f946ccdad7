import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  fitScale,
  forecastOrigins,
  futureTimestamp,
  historyLength,
  parseCsv,
  SeriesError,
  seriesFromTable,
  splitByTime,
  timeFeatureValues,
} from '../../src/data/series.js';
import { loadSeries } from '../../src/data/series-fs.js';

const root = mkdtempSync(join(tmpdir(), 'sumi-series-'));
after(() => rmSync(root, { recursive: true, force: true }));

function csvFile(name: string, text: string): string {
  const path = join(root, name);
  writeFileSync(path, text);
  return path;
}

void describe('parseCsv', () => {
  void it('reads quoted fields, doubled quotes and CRLF line ends', () => {
    const t = parseCsv('a,b\r\n"x,1","say ""hi"""\r\n\r\n2,3\n', 'm.csv');
    assert.deepEqual(t.header, ['a', 'b']);
    assert.deepEqual(t.rows, [
      ['x,1', 'say "hi"'],
      ['2', '3'],
    ]);
  });
  void it('refuses an empty file, a header alone and a short row', () => {
    assert.throws(() => parseCsv('', 'e.csv'), /e\.csv: empty CSV/);
    assert.throws(() => parseCsv('date,v\n', 'h.csv'), /h\.csv: no data rows/);
    assert.throws(() => parseCsv('date,v\n1,2\n3\n', 's.csv'), /s\.csv: row 3 has 1 fields/);
  });
});

void describe('seriesFromTable', () => {
  const table = parseCsv(
    'date,a,b\n2020-01-01,1,10\n2020-01-02,,20\n2020-01-03,3,NA\n2020-01-04,4,40\n',
    'f.csv',
  );
  void it('refuses a missing value, naming the row and the column', () => {
    assert.throws(
      () => seriesFromTable(table, { targets: ['a'] }, 'f.csv'),
      /f\.csv: row 3, column 'a': missing value/,
    );
  });
  void it('forward-fills missing values when asked', () => {
    const s = seriesFromTable(table, { targets: ['a', 'b'], fill: 'forward' }, 'f.csv');
    assert.deepEqual([...s.values], [1, 10, 1, 20, 3, 20, 4, 40]);
    assert.equal(s.freq, 'daily');
    assert.equal(s.timestamps[1]! - s.timestamps[0]!, 86_400_000);
  });
  void it('names a target column that does not exist, with the columns there are', () => {
    assert.throws(
      () => seriesFromTable(table, { targets: ['temp'] }, 'f.csv'),
      (e: unknown) =>
        e instanceof SeriesError &&
        e.message === "f.csv: no target column 'temp' (columns: date, a, b)",
    );
  });
  void it('refuses timestamps out of order and cells that are not numbers', () => {
    const back = parseCsv('t,v\n2020-01-02,1\n2020-01-01,2\n', 'o.csv');
    assert.throws(() => seriesFromTable(back, { targets: ['v'] }, 'o.csv'), /row 3: timestamp/);
    const word = parseCsv('t,v\n2020-01-01,1\n2020-01-02,x\n', 'w.csv');
    assert.throws(() => seriesFromTable(word, { targets: ['v'] }, 'w.csv'), /'x' is not a number/);
  });
});

void describe('time features and windows', () => {
  void it('gives sin/cos of calendar fractions', () => {
    // 2020-01-01 is a Wednesday (day 3): day_of_week fraction 3/7.
    const [s, c] = timeFeatureValues(['day_of_week'], Date.UTC(2020, 0, 1));
    assert.ok(Math.abs(s! - Math.sin((2 * Math.PI * 3) / 7)) < 1e-12, `sin ${s}`);
    assert.ok(Math.abs(c! - Math.cos((2 * Math.PI * 3) / 7)) < 1e-12, `cos ${c}`);
  });
  void it('steps monthly series by calendar months', () => {
    const ts = Float64Array.of(Date.UTC(2020, 10, 1), Date.UTC(2020, 11, 1));
    assert.equal(futureTimestamp(ts, 'monthly', 2), Date.UTC(2021, 1, 1));
  });
  void it('fits the mean scale (mean |x|) and the standard scale over rows', () => {
    const v = Float64Array.of(1, -3, 100, 2);
    const m = fitScale(v, 1, 0, 2, 'mean');
    assert.deepEqual([m.loc[0], m.scale[0]], [0, 2]);
    const s = fitScale(v, 1, 0, 2, 'standard');
    assert.equal(s.loc[0], -1);
    assert.ok(Math.abs(s.scale[0]! - (2 + 2e-3)) < 1e-12, `scale ${s.scale[0]}`);
  });
  void it('splits by time and refuses a horizon longer than the series', () => {
    const rows = Array.from({ length: 100 }, (_, i) => `${2000 + i},${i}`).join('\n');
    const s = seriesFromTable(parseCsv(`year,v\n${rows}\n`, 'y.csv'), { targets: ['v'] }, 'y.csv');
    assert.equal(s.freq, 'yearly');
    const w = { context: 10, horizon: 5, lags: [1, 3] };
    assert.equal(historyLength(w), 13);
    assert.deepEqual(splitByTime(s, w), { trainEnd: 70, validationEnd: 80, length: 100 });
    assert.deepEqual(forecastOrigins(80, 100, w), [80, 85, 90, 95]);
    assert.throws(
      () => splitByTime(s, { ...w, horizon: 120 }),
      /y\.csv: horizon 120 is longer than the series \(100 rows\)/,
    );
    assert.throws(() => splitByTime(s, { ...w, horizon: 30 }), /test part .* shorter than/);
    assert.throws(() => splitByTime(s, { ...w, context: 80 }), /training part has 70 rows/);
  });
});

void describe('loadSeries', () => {
  void it('reads the named real series from vega-datasets', async () => {
    const w = await loadSeries('seattle-weather');
    assert.deepEqual([w.targets, w.freq, w.timestamps.length], [['temp_max'], 'daily', 1461]);
    assert.equal(w.values[0], 12.8);
    const co2 = await loadSeries('co2');
    assert.equal(co2.freq, 'monthly');
    assert.equal(co2.values[0], 315.7);
    const h = await loadSeries('seattle-hourly', { targets: ['temperature', 'wind'] });
    assert.deepEqual([h.freq, h.values.length], ['hourly', 2 * h.timestamps.length]);
  });
  void it('reads a CSV file and refuses an empty one and a missing file', async () => {
    const p = csvFile('ok.csv', 'when,x\n2021-01-01T00:00:00,1.5\n2021-01-01T01:00:00,2\n');
    const s = await loadSeries(p, { targets: ['x'] });
    assert.deepEqual([...s.values], [1.5, 2]);
    const empty = csvFile('empty.csv', '');
    await assert.rejects(loadSeries(empty, { targets: ['x'] }), /empty\.csv: empty CSV/);
    await assert.rejects(loadSeries(join(root, 'nope.csv'), { targets: ['x'] }), /no such file/);
  });
});
