/**
 * Time series for probabilistic forecasting: a CSV table (a timestamp column and one or more
 * target columns) to a regular series, its time features, the windows a forecaster trains on,
 * per-window scaling, and the split by time into train, validation and test parts.
 *
 * Missing values (an empty cell, `NA`, `NaN`, `null`) are refused by default with the row and
 * the column; `fill: 'forward'` repeats the last observed value instead (a missing first value
 * stays an error: there is nothing to repeat).
 *
 * Nothing here reads files: series-fs.ts reads CSV files and the named real datasets.
 */

/** A problem with a series or a request on it: the message names the source and the value. */
export class SeriesError extends Error {
  override name = 'SeriesError';
}

export interface CsvTable {
  header: string[];
  /** Data rows, each with header.length cells. */
  rows: string[][];
}

/**
 * RFC 4180 CSV: comma-separated, fields optionally in double quotes (`""` is a quote inside one),
 * LF or CRLF line ends, the first row the header. Blank lines are skipped. `source` names the
 * input in errors.
 */
export function parseCsv(text: string, source: string): CsvTable {
  const records: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endRow = (): void => {
    row.push(field);
    field = '';
    if (!(row.length === 1 && row[0] === '')) records.push(row);
    row = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') endRow();
    else if (c !== '\r') field += c;
    i++;
  }
  if (quoted)
    throw new SeriesError(`${source}: a quoted field is not closed at the end of the file`);
  if (field !== '' || row.length > 0) endRow();
  const header = records.shift();
  if (header === undefined) throw new SeriesError(`${source}: empty CSV (no header row)`);
  const cols = header.map((h) => h.trim());
  if (records.length === 0) throw new SeriesError(`${source}: no data rows after the header`);
  records.forEach((r, k) => {
    if (r.length !== cols.length) {
      throw new SeriesError(
        `${source}: row ${k + 2} has ${r.length} fields, the header has ${cols.length}`,
      );
    }
  });
  return { header: cols, rows: records };
}

/** How far apart consecutive observations are. */
export type Frequency = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'quarterly' | 'yearly';

export interface TimeSeries {
  /** Where it came from (a file or a dataset name). */
  name: string;
  /** Milliseconds since the epoch (UTC), strictly increasing. */
  timestamps: Float64Array;
  /** Names of the target columns (D of them). */
  targets: string[];
  /** [T, D] row-major. */
  values: Float64Array;
  freq: Frequency;
}

export const seriesLength = (s: TimeSeries): number => s.timestamps.length;

export interface SeriesOptions {
  /** The timestamp column (default: the first column). */
  timestamp?: string;
  /** The target columns (at least one). */
  targets: readonly string[];
  /** What to do with a missing value: refuse (default) or repeat the previous one. */
  fill?: 'none' | 'forward';
}

const MISSING = new Set(['', 'na', 'nan', 'null', 'n/a']);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The frequency of a median step of `ms` milliseconds. */
export function frequencyOf(ms: number): Frequency {
  if (ms < 2 * HOUR) return 'hourly';
  if (ms < 3 * DAY) return 'daily';
  if (ms < 20 * DAY) return 'weekly';
  if (ms < 60 * DAY) return 'monthly';
  if (ms < 200 * DAY) return 'quarterly';
  return 'yearly';
}

/** The season length m of seasonal-naive forecasts and MASE (GluonTS's for each frequency). */
export function seasonLength(freq: Frequency): number {
  const m: Record<Frequency, number> = {
    hourly: 24,
    daily: 7,
    weekly: 52,
    monthly: 12,
    quarterly: 4,
    yearly: 1,
  };
  return m[freq];
}

/** A timestamp cell: a bare year (`1880`) or anything Date.parse reads, taken as UTC. */
function parseTime(cell: string): number {
  const s = cell.trim();
  if (/^\d{4}$/.test(s)) return Date.UTC(Number(s), 0, 1);
  const iso = /^\d{4}-\d{2}-\d{2}(T[\d:.]+)?$/.test(s);
  return Date.parse(iso && !s.includes('T') ? `${s}T00:00:00Z` : iso ? `${s}Z` : `${s} UTC`);
}

/** The series of `opts.targets` in a table; every problem is a SeriesError naming `source`. */
export function seriesFromTable(table: CsvTable, opts: SeriesOptions, source: string): TimeSeries {
  const { header, rows } = table;
  const col = (name: string, what: string): number => {
    const k = header.indexOf(name);
    if (k < 0) {
      throw new SeriesError(
        `${source}: no ${what} column '${name}' (columns: ${header.join(', ')})`,
      );
    }
    return k;
  };
  const tsCol = opts.timestamp === undefined ? 0 : col(opts.timestamp, 'timestamp');
  if (opts.targets.length === 0) throw new SeriesError(`${source}: no target column given`);
  const targetCols = opts.targets.map((t) => col(t, 'target'));
  if (targetCols.includes(tsCol)) {
    throw new SeriesError(`${source}: '${header[tsCol]}' is the timestamp column, not a target`);
  }
  const T = rows.length;
  const D = targetCols.length;
  const timestamps = new Float64Array(T);
  const values = new Float64Array(T * D);
  for (let r = 0; r < T; r++) {
    const row = rows[r]!;
    const line = r + 2;
    const t = parseTime(row[tsCol]!);
    if (!Number.isFinite(t)) {
      throw new SeriesError(
        `${source}: row ${line}, column '${header[tsCol]}': '${row[tsCol]}' is not a timestamp`,
      );
    }
    if (r > 0 && t <= timestamps[r - 1]!) {
      throw new SeriesError(
        `${source}: row ${line}: timestamp '${row[tsCol]}' is not after the previous row's`,
      );
    }
    timestamps[r] = t;
    for (let d = 0; d < D; d++) {
      const c = targetCols[d]!;
      const cell = row[c]!.trim();
      let v: number;
      if (MISSING.has(cell.toLowerCase())) {
        if (opts.fill !== 'forward') {
          throw new SeriesError(
            `${source}: row ${line}, column '${header[c]}': missing value (use forward fill to repeat the previous value)`,
          );
        }
        if (r === 0) {
          throw new SeriesError(
            `${source}: row ${line}, column '${header[c]}': missing first value (forward fill has nothing to repeat)`,
          );
        }
        v = values[(r - 1) * D + d]!;
      } else {
        v = Number(cell);
        if (!Number.isFinite(v)) {
          throw new SeriesError(
            `${source}: row ${line}, column '${header[c]}': '${cell}' is not a number`,
          );
        }
      }
      values[r * D + d] = v;
    }
  }
  if (T < 2) throw new SeriesError(`${source}: ${T} row; a series needs at least 2`);
  const steps = Array.from({ length: T - 1 }, (_, i) => timestamps[i + 1]! - timestamps[i]!);
  steps.sort((a, b) => a - b);
  const freq = frequencyOf(steps[Math.floor(steps.length / 2)]!);
  return { name: source, timestamps, targets: opts.targets.slice(), values, freq };
}

// ---- time features ----------------------------------------------------------------------------

/** Calendar positions a forecaster sees, each as a fraction of its period in [0, 1). */
export type TimeFeature = 'hour_of_day' | 'day_of_week' | 'day_of_year' | 'month_of_year';

/** The calendar positions that vary within a season of this frequency (as GluonTS chooses). */
export function timeFeaturesFor(freq: Frequency): TimeFeature[] {
  switch (freq) {
    case 'hourly':
      return ['hour_of_day', 'day_of_week'];
    case 'daily':
      return ['day_of_week', 'day_of_year'];
    case 'weekly':
    case 'monthly':
    case 'quarterly':
      return ['month_of_year'];
    case 'yearly':
      return [];
    default:
      throw new Error(`unknown frequency '${String(freq satisfies never)}'`);
  }
}

function fraction(f: TimeFeature, ms: number): number {
  const d = new Date(ms);
  switch (f) {
    case 'hour_of_day':
      return d.getUTCHours() / 24;
    case 'day_of_week':
      return d.getUTCDay() / 7;
    case 'day_of_year':
      return (ms - Date.UTC(d.getUTCFullYear(), 0, 1)) / DAY / 366;
    case 'month_of_year':
      return d.getUTCMonth() / 12;
    default:
      throw new Error(`unknown time feature '${String(f satisfies never)}'`);
  }
}

/** [sin 2πu, cos 2πu] for each feature's fraction u at one time: 2·features.length numbers. */
export function timeFeatureValues(features: readonly TimeFeature[], ms: number): number[] {
  return features.flatMap((f) => {
    const a = 2 * Math.PI * fraction(f, ms);
    return [Math.sin(a), Math.cos(a)];
  });
}

/**
 * The timestamp `k` steps after the last one of `timestamps` (k ≥ 1): calendar months for
 * monthly and coarser series, the median step otherwise.
 */
export function futureTimestamp(timestamps: Float64Array, freq: Frequency, k: number): number {
  const last = timestamps[timestamps.length - 1]!;
  const months = freq === 'monthly' ? 1 : freq === 'quarterly' ? 3 : freq === 'yearly' ? 12 : 0;
  if (months > 0) {
    const d = new Date(last);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months * k, d.getUTCDate());
  }
  const n = timestamps.length;
  const step = n > 1 ? (last - timestamps[0]!) / (n - 1) : DAY;
  return last + Math.round(step) * k;
}

// ---- scaling ----------------------------------------------------------------------------------

/** x̃ = (x − loc) / scale per target dimension. */
export interface SeriesScale {
  loc: Float64Array;
  scale: Float64Array;
}

/**
 * 'mean': GluonTS's MeanScaler as TimeGrad uses it, loc 0 and scale = mean |x| over the context
 * (1 when that is 0); 'standard': loc = mean, scale = standard deviation (+1e-3 · (|mean| + 1), so
 * a flat context does not divide by zero).
 */
export type ScalingKind = 'mean' | 'standard';

/** The scale of each target over rows [start, end) of a [T, D] array. */
export function fitScale(
  values: Float64Array,
  D: number,
  start: number,
  end: number,
  kind: ScalingKind,
): SeriesScale {
  const loc = new Float64Array(D);
  const scale = new Float64Array(D);
  const n = end - start;
  for (let d = 0; d < D; d++) {
    let s = 0;
    let sa = 0;
    for (let t = start; t < end; t++) {
      const v = values[t * D + d]!;
      s += v;
      sa += Math.abs(v);
    }
    if (kind === 'mean') {
      scale[d] = sa > 0 ? sa / n : 1;
      continue;
    }
    const m = s / n;
    let ss = 0;
    for (let t = start; t < end; t++) ss += (values[t * D + d]! - m) ** 2;
    loc[d] = m;
    scale[d] = Math.sqrt(ss / n) + 1e-3 * (Math.abs(m) + 1);
  }
  return { loc, scale };
}

// ---- windows and the split --------------------------------------------------------------------

export interface WindowSpec {
  context: number;
  horizon: number;
  /** Lags of the inputs (1 = the previous value); the window reaches max(lags) further back. */
  lags: readonly number[];
}

/** Rows before a forecast origin that a window needs: the context and the largest lag. */
export const historyLength = (w: WindowSpec): number => w.context + Math.max(0, ...w.lags);

export interface TimeSplit {
  /** Rows [0, trainEnd) train; [trainEnd, validationEnd) validate; [validationEnd, T) test. */
  trainEnd: number;
  validationEnd: number;
  length: number;
}

/**
 * The split by time: the last `test` fraction of the rows is the test part, the `validation`
 * fraction before it the validation part. Each must hold a horizon, and the training part a whole
 * window (history and horizon); otherwise a SeriesError says how many rows are needed.
 */
export function splitByTime(
  s: TimeSeries,
  w: WindowSpec,
  fractions: { validation: number; test: number } = { validation: 0.1, test: 0.2 },
): TimeSplit {
  const T = seriesLength(s);
  const need = historyLength(w) + w.horizon;
  if (w.horizon < 1 || w.context < 1) {
    throw new SeriesError(`context ${w.context} and horizon ${w.horizon} must be at least 1`);
  }
  if (w.horizon >= T) {
    throw new SeriesError(`${s.name}: horizon ${w.horizon} is longer than the series (${T} rows)`);
  }
  const validationEnd = T - Math.round(T * fractions.test);
  const trainEnd = validationEnd - Math.round(T * fractions.validation);
  if (T - validationEnd < w.horizon) {
    throw new SeriesError(
      `${s.name}: the test part (last ${T - validationEnd} of ${T} rows) is shorter than the horizon ${w.horizon}`,
    );
  }
  if (trainEnd < need) {
    throw new SeriesError(
      `${s.name}: the training part has ${trainEnd} rows; a window of context ${w.context}, lags up to ${Math.max(0, ...w.lags)} and horizon ${w.horizon} needs ${need}`,
    );
  }
  return { trainEnd, validationEnd, length: T };
}

/** Forecast origins (the first future row) in [from, to − horizon], every `stride` rows. */
export function forecastOrigins(
  from: number,
  to: number,
  w: WindowSpec,
  stride = w.horizon,
): number[] {
  const out: number[] = [];
  for (let o = Math.max(from, historyLength(w)); o + w.horizon <= to; o += stride) out.push(o);
  return out;
}

/** Rows [start, end) of the series' [T, D] values. */
export function seriesRows(s: TimeSeries, start: number, end: number): Float64Array {
  const D = s.targets.length;
  return s.values.subarray(start * D, end * D);
}
