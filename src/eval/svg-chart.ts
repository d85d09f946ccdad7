/**
 * A line chart as a standalone SVG document: several named series of (x, y) points on linear or
 * logarithmic axes, optional horizontal reference lines, a legend. The charting libraries on npm
 * either need a DOM (Observable Plot, Chartist) or are large runtimes (Vega); one chart kind in
 * plain text needs neither.
 *
 * Mapping: a value v on an axis [lo, hi] of length L goes to L (f(v) − f(lo)) / (f(hi) − f(lo))
 * with f = log10 on a log axis and f(v) = v on a linear one; y grows upwards.
 */

export interface ChartPoint {
  x: number;
  y: number;
}

export interface ChartSeries {
  name: string;
  points: readonly ChartPoint[];
}

export interface ReferenceLine {
  y: number;
  label: string;
}

export interface LineChartOptions {
  title?: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  /** Dashed horizontal lines (a floor, a target). */
  lines?: readonly ReferenceLine[];
  /** Where the x axis has ticks (default: chosen from the range). */
  xTicks?: readonly number[];
  width?: number;
  height?: number;
}

/** Colours of the series, in order (then repeated). */
const PALETTE = [
  '#1f4e9c',
  '#d1495b',
  '#2e933c',
  '#edae49',
  '#7b3f9e',
  '#00798c',
  '#8c564b',
  '#e377c2',
  '#555555',
  '#9bb02a',
];

/** Escapes text for SVG character data and attribute values. */
export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** Short tick label: 0.001, 0.5, 20, 1.5e4. */
function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
}

/** Ticks of a linear axis: multiples of a step 1, 2 or 5 × 10^k giving about `target` ticks. */
export function linearTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k++) {
    out.push(Number((k * step).toPrecision(12)));
  }
  return out;
}

/** Ticks of a log axis: the powers of ten in [lo, hi], and 2 and 5 × them over ≤ 2.5 decades. */
export function logTicks(lo: number, hi: number): number[] {
  const e0 = Math.floor(Math.log10(lo));
  const e1 = Math.ceil(Math.log10(hi));
  const mults = Math.log10(hi / lo) <= 2.5 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = e0; e <= e1; e++) {
    for (const m of mults) {
      const v = Number((m * 10 ** e).toPrecision(12));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

interface Axis {
  lo: number;
  hi: number;
  log: boolean;
  ticks: number[];
}

function makeAxis(
  values: readonly number[],
  log: boolean,
  what: string,
  ticks?: readonly number[],
): Axis {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (finite.length === 0) throw new Error(`line chart: no plottable ${what} values`);
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (log) {
    // 5% of the decades spanned (at least 0.05 decades) on each side.
    const pad = 10 ** Math.max(0.05, 0.05 * Math.log10(hi / lo));
    lo /= pad;
    hi *= pad;
    const given = ticks?.filter((t) => t >= lo && t <= hi);
    return { lo, hi, log, ticks: given ?? logTicks(lo, hi) };
  }
  const pad = hi > lo ? 0.05 * (hi - lo) : Math.max(Math.abs(lo) * 0.1, 1);
  lo -= pad;
  hi += pad;
  const given = ticks?.filter((t) => t >= lo && t <= hi);
  return { lo, hi, log, ticks: given ?? linearTicks(lo, hi) };
}

function position(a: Axis, v: number, length: number): number {
  const f = (u: number): number => (a.log ? Math.log10(u) : u);
  return (length * (f(v) - f(a.lo))) / (f(a.hi) - f(a.lo));
}

/** The SVG text of a line chart (see the module comment). Points that cannot be drawn are skipped. */
export function lineChartSvg(series: readonly ChartSeries[], opts: LineChartOptions): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 420;
  const m = { left: 70, right: 170, top: opts.title === undefined ? 20 : 40, bottom: 50 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const ok = (p: ChartPoint): boolean =>
    Number.isFinite(p.x) &&
    Number.isFinite(p.y) &&
    (opts.logX !== true || p.x > 0) &&
    (opts.logY !== true || p.y > 0);
  const pts = series.flatMap((s) => s.points.filter(ok));
  const lines = (opts.lines ?? []).filter((l) => ok({ x: 1, y: l.y }));
  const xa = makeAxis(
    pts.map((p) => p.x),
    opts.logX === true,
    'x',
    opts.xTicks,
  );
  const ya = makeAxis([...pts.map((p) => p.y), ...lines.map((l) => l.y)], opts.logY === true, 'y');
  const X = (v: number): string => (m.left + position(xa, v, pw)).toFixed(1);
  const Y = (v: number): string => (m.top + ph - position(ya, v, ph)).toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  if (opts.title !== undefined) {
    out.push(
      `<text x="${m.left + pw / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(opts.title)}</text>`,
    );
  }
  for (const t of ya.ticks) {
    out.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e3e3e3"/>`,
      `<text x="${m.left - 6}" y="${(Number(Y(t)) + 4).toFixed(1)}" text-anchor="end">${formatTick(t)}</text>`,
    );
  }
  for (const t of xa.ticks) {
    out.push(
      `<line x1="${X(t)}" x2="${X(t)}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`,
      `<text x="${X(t)}" y="${m.top + ph + 16}" text-anchor="middle">${formatTick(t)}</text>`,
    );
  }
  const midY = m.top + ph / 2;
  out.push(
    `<text x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`,
    `<text x="16" y="${midY}" transform="rotate(-90 16 ${midY})" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`,
  );
  for (const l of lines) {
    out.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${Y(l.y)}" y2="${Y(l.y)}" stroke="#777" stroke-dasharray="6 4"/>`,
      `<text x="${m.left + pw - 4}" y="${(Number(Y(l.y)) - 4).toFixed(1)}" text-anchor="end" fill="#555">${escapeXml(l.label)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const p = s.points.filter(ok);
    if (p.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${p.map((q) => `${X(q.x)},${Y(q.y)}`).join(' ')}"/>`,
      );
    }
    for (const q of p) out.push(`<circle cx="${X(q.x)}" cy="${Y(q.y)}" r="3" fill="${colour}"/>`);
    const ly = m.top + 10 + 18 * i;
    out.push(
      `<line x1="${m.left + pw + 14}" x2="${m.left + pw + 38}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${m.left + pw + 44}" y="${ly + 4}">${escapeXml(s.name)}</text>`,
    );
  });
  out.push(
    `<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}
