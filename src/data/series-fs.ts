/**
 * Series from files: a user's CSV file, or a named real dataset of the npm package
 * `vega-datasets` (installed with the project's dev dependencies; nothing is downloaded).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import {
  parseCsv,
  SeriesError,
  seriesFromTable,
  type SeriesOptions,
  type TimeSeries,
} from './series.js';

export interface NamedSeries {
  /** File under vega-datasets/data. */
  file: string;
  timestamp: string;
  /** The target when none is given. */
  target: string;
  about: string;
}

/** The real series Sumi knows by name. */
export const NAMED_SERIES: Readonly<Record<string, NamedSeries>> = {
  'seattle-weather': {
    file: 'seattle-weather.csv',
    timestamp: 'date',
    target: 'temp_max',
    about:
      'daily weather in Seattle 2012-2015 (temp_max, temp_min, precipitation, wind; °C, mm, m/s)',
  },
  'seattle-hourly': {
    file: 'seattle-weather-hourly-normals.csv',
    timestamp: 'date',
    target: 'temperature',
    about: 'hourly climate normals in Seattle over one year (temperature °C, pressure, wind)',
  },
  co2: {
    file: 'co2-concentration.csv',
    timestamp: 'Date',
    target: 'CO2',
    about: 'monthly CO₂ concentration at Mauna Loa 1958-2020 (ppm; CO2, adjusted CO2)',
  },
};

export const namedSeriesNames = Object.keys(NAMED_SERIES);

/**
 * vega-datasets' data folder, from the folders Node looks in for the package (its exports map
 * hides package.json from require.resolve).
 */
function vegaDataDir(what: string): string {
  const paths = createRequire(import.meta.url).resolve.paths('vega-datasets') ?? [];
  for (const p of paths) {
    const dir = join(p, 'vega-datasets', 'data');
    if (existsSync(dir)) return dir;
  }
  throw new SeriesError(
    `${what} needs the npm package 'vega-datasets', which is not installed: run 'npm install vega-datasets'`,
  );
}

export interface LoadSeriesOptions extends Partial<SeriesOptions> {
  /** Read a file even when its name is also a dataset name. */
  file?: boolean;
}

/**
 * A series from `data`: a dataset name (NAMED_SERIES) or a CSV file. Targets default to the
 * dataset's; a file needs them. Every problem is a SeriesError naming the file and the value.
 */
export async function loadSeries(data: string, opts: LoadSeriesOptions = {}): Promise<TimeSeries> {
  const named = opts.file === true ? undefined : NAMED_SERIES[data];
  let path = data;
  let timestamp = opts.timestamp;
  let targets = opts.targets;
  if (named !== undefined) {
    path = join(vegaDataDir(`the dataset '${data}'`), named.file);
    timestamp ??= named.timestamp;
    if (targets === undefined || targets.length === 0) targets = [named.target];
  }
  if (targets === undefined || targets.length === 0) {
    throw new SeriesError(`${data}: no target column given (the columns to forecast)`);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(e);
    throw new SeriesError(
      `${data}: ${why} (a CSV file, or one of the datasets ${namedSeriesNames.join(', ')})`,
    );
  }
  const source = named !== undefined ? data : path;
  return seriesFromTable(
    parseCsv(text, source),
    { timestamp, targets, fill: opts.fill ?? 'none' },
    source,
  );
}
