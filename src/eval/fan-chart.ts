/**
 * A fan chart of a probabilistic forecast: the recent history, the 90% and 50% central intervals
 * of the sample paths as shaded bands, their median, and (when known) the true continuation.
 * `fanChartSvg` draws it as an SVG document with labelled axes; `fanChartImage` rasterises the
 * same geometry (without text) into an RGB image for a PNG. A band is filled column by column
 * between its lower and upper curves, which are functions of x, so no polygon filling is needed.
 */
import type { RawImage } from '../data/image/index.js';
import { escapeXml, linearTicks } from './svg-chart.js';

export interface FanChartData {
  /** x of the history points (e.g. days since the start) and their values. */
  historyX: readonly number[];
  history: readonly number[];
  /** x of the horizon rows. */
  futureX: readonly number[];
  /** Quantiles per horizon row. */
  q05: readonly number[];
  q25: readonly number[];
  q50: readonly number[];
  q75: readonly number[];
  q95: readonly number[];
  /** The true values over the horizon, when scoring a backtest. */
  truth?: readonly number[];
}

export interface FanChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
}

const COLORS = {
  history: [31, 78, 156],
  band90: [198, 219, 239],
  band50: [107, 174, 214],
  median: [8, 48, 107],
  truth: [209, 73, 91],
  axis: [85, 85, 85],
  grid: [232, 232, 232],
} as const;

const hex = (c: readonly number[]): string =>
  `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;

interface Frame {
  w: number;
  h: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  xlo: number;
  xhi: number;
  ylo: number;
  yhi: number;
}

function frameOf(d: FanChartData, width: number, height: number): Frame {
  const xs = [...d.historyX, ...d.futureX];
  const ys = [...d.history, ...d.q05, ...d.q95, ...(d.truth ?? [])].filter(Number.isFinite);
  let ylo = Math.min(...ys);
  let yhi = Math.max(...ys);
  if (ylo === yhi) {
    ylo -= 1;
    yhi += 1;
  }
  const pad = 0.05 * (yhi - ylo);
  return {
    w: width,
    h: height,
    left: 64,
    right: width - 16,
    top: 36,
    bottom: height - 44,
    xlo: Math.min(...xs),
    xhi: Math.max(...xs),
    ylo: ylo - pad,
    yhi: yhi + pad,
  };
}

const px = (f: Frame, x: number): number =>
  f.left + ((x - f.xlo) / (f.xhi - f.xlo || 1)) * (f.right - f.left);
const py = (f: Frame, y: number): number =>
  f.bottom - ((y - f.ylo) / (f.yhi - f.ylo)) * (f.bottom - f.top);

/** The fan chart as a standalone SVG document. */
export function fanChartSvg(d: FanChartData, opts: FanChartOptions = {}): string {
  const f = frameOf(d, opts.width ?? 800, opts.height ?? 400);
  const pts = (xs: readonly number[], ys: readonly number[]): string =>
    xs.map((x, i) => `${px(f, x).toFixed(1)},${py(f, ys[i]!).toFixed(1)}`).join(' ');
  const band = (lo: readonly number[], hi: readonly number[], c: readonly number[]): string => {
    const upper = pts(d.futureX, hi);
    const lower = pts([...d.futureX].reverse(), [...lo].reverse());
    return `<polygon points="${upper} ${lower}" fill="${hex(c)}" stroke="none"/>`;
  };
  const line = (xs: readonly number[], ys: readonly number[], c: readonly number[], dash = '') =>
    `<polyline points="${pts(xs, ys)}" fill="none" stroke="${hex(c)}" stroke-width="2"${dash}/>`;
  const yTicks = linearTicks(f.ylo, f.yhi, 6);
  const xTicks = linearTicks(f.xlo, f.xhi, 8);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.w}" height="${f.h}" viewBox="0 0 ${f.w} ${f.h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${f.w}" height="${f.h}" fill="white"/>`,
  ];
  for (const t of yTicks) {
    const y = py(f, t).toFixed(1);
    parts.push(
      `<line x1="${f.left}" x2="${f.right}" y1="${y}" y2="${y}" stroke="${hex(COLORS.grid)}"/>`,
      `<text x="${f.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${t}</text>`,
    );
  }
  for (const t of xTicks) {
    const x = px(f, t).toFixed(1);
    parts.push(`<text x="${x}" y="${f.bottom + 16}" text-anchor="middle">${t}</text>`);
  }
  parts.push(
    band(d.q05, d.q95, COLORS.band90),
    band(d.q25, d.q75, COLORS.band50),
    line(d.historyX, d.history, COLORS.history),
    line(d.futureX, d.q50, COLORS.median),
  );
  if (d.truth) parts.push(line(d.futureX, d.truth, COLORS.truth, ' stroke-dasharray="5,3"'));
  parts.push(
    `<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.bottom}" stroke="${hex(COLORS.axis)}"/>`,
    `<line x1="${f.left}" x2="${f.right}" y1="${f.bottom}" y2="${f.bottom}" stroke="${hex(COLORS.axis)}"/>`,
  );
  if (opts.title) {
    parts.push(`<text x="${f.left}" y="20" font-size="14">${escapeXml(opts.title)}</text>`);
  }
  if (opts.xLabel) {
    parts.push(
      `<text x="${(f.left + f.right) / 2}" y="${f.h - 8}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`,
    );
  }
  if (opts.yLabel) {
    parts.push(
      `<text transform="translate(14 ${(f.top + f.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`,
    );
  }
  const legend: [string, readonly number[]][] = [
    ['history', COLORS.history],
    ['median', COLORS.median],
    ['50% interval', COLORS.band50],
    ['90% interval', COLORS.band90],
    ...(d.truth ? ([['truth', COLORS.truth]] as [string, readonly number[]][]) : []),
  ];
  legend.forEach(([name, c], i) => {
    const x = f.right - 110;
    const y = f.top + 4 + i * 16;
    parts.push(
      `<rect x="${x}" y="${y}" width="12" height="10" fill="${hex(c)}"/>`,
      `<text x="${x + 18}" y="${y + 9}">${name}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** The fan chart's geometry in an RGB image (no text: see fanChartSvg for the labelled one). */
export function fanChartImage(d: FanChartData, opts: FanChartOptions = {}): RawImage {
  const f = frameOf(d, opts.width ?? 800, opts.height ?? 400);
  const data = new Uint8Array(f.w * f.h * 3).fill(255);
  const set = (x: number, y: number, c: readonly number[]): void => {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= f.w || yi >= f.h) return;
    data.set(c, (yi * f.w + xi) * 3);
  };
  const vspan = (x: number, y0: number, y1: number, c: readonly number[]): void => {
    const [a, b] = y0 < y1 ? [y0, y1] : [y1, y0];
    for (let y = Math.floor(a); y <= Math.ceil(b); y++) set(x, y, c);
  };
  /** Values of a piecewise-linear curve at each pixel column between its first and last x. */
  const columns = (xs: readonly number[], ys: readonly number[]): Map<number, number> => {
    const out = new Map<number, number>();
    for (let i = 0; i + 1 < xs.length; i++) {
      const x0 = px(f, xs[i]!);
      const x1 = px(f, xs[i + 1]!);
      for (let x = Math.ceil(x0); x <= Math.floor(x1); x++) {
        const t = x1 > x0 ? (x - x0) / (x1 - x0) : 0;
        out.set(x, py(f, ys[i]! + t * (ys[i + 1]! - ys[i]!)));
      }
    }
    if (xs.length === 1) out.set(Math.round(px(f, xs[0]!)), py(f, ys[0]!));
    return out;
  };
  const band = (lo: readonly number[], hi: readonly number[], c: readonly number[]): void => {
    const l = columns(d.futureX, lo);
    const h = columns(d.futureX, hi);
    for (const [x, y0] of l) vspan(x, y0, h.get(x) ?? y0, c);
  };
  const line = (xs: readonly number[], ys: readonly number[], c: readonly number[]): void => {
    let prev: number | null = null;
    for (const [x, y] of columns(xs, ys)) {
      vspan(x, prev ?? y, y, c);
      vspan(x, y - 1, y + 1, c);
      prev = y;
    }
  };
  for (const t of linearTicks(f.ylo, f.yhi, 6)) {
    for (let x = f.left; x <= f.right; x++) set(x, py(f, t), COLORS.grid);
  }
  band(d.q05, d.q95, COLORS.band90);
  band(d.q25, d.q75, COLORS.band50);
  line(d.historyX, d.history, COLORS.history);
  line(d.futureX, d.q50, COLORS.median);
  if (d.truth) line(d.futureX, d.truth, COLORS.truth);
  vspan(f.left, f.top, f.bottom, COLORS.axis);
  for (let x = f.left; x <= f.right; x++) set(x, f.bottom, COLORS.axis);
  for (const t of linearTicks(f.xlo, f.xhi, 8))
    vspan(px(f, t), f.bottom, f.bottom + 5, COLORS.axis);
  return { width: f.w, height: f.h, channels: 3, data };
}
