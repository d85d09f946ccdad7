/**
 * Draws the loss curve of a `sumi train` run as an SVG (log-scale loss against step), from its
 * metrics.jsonl, and prints a Markdown table of the loss averaged over windows of steps.
 *
 *   npx tsx scripts/loss-curve.ts <run>/metrics.jsonl out.svg [--window 250]
 */
import { readFileSync, writeFileSync } from 'node:fs';

interface Row {
  step: number;
  loss: number;
}

function readMetrics(path: string): Row[] {
  const rows: Row[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const r = JSON.parse(line) as Partial<Row>;
    if (typeof r.step === 'number' && typeof r.loss === 'number')
      rows.push({ step: r.step, loss: r.loss });
  }
  if (rows.length === 0) throw new Error(`${path}: no {step, loss} lines`);
  return rows;
}

function svg(rows: Row[]): string {
  const W = 640;
  const H = 320;
  const left = 60;
  const right = 20;
  const top = 20;
  const bottom = 40;
  const maxStep = rows[rows.length - 1]!.step;
  const logs = rows.map((r) => Math.log10(r.loss));
  const lo = Math.floor(Math.min(...logs));
  const hi = Math.ceil(Math.max(...logs));
  const x = (s: number): number => left + ((W - left - right) * s) / maxStep;
  const y = (l: number): number => top + ((H - top - bottom) * (hi - l)) / (hi - lo);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  for (let e = lo; e <= hi; e++) {
    parts.push(
      `<line x1="${left}" x2="${W - right}" y1="${y(e)}" y2="${y(e)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y(e) + 4}" text-anchor="end">1e${e}</text>`,
    );
  }
  const tick = 10 ** Math.floor(Math.log10(maxStep));
  const stepTick = maxStep / tick >= 4 ? tick : tick / 2;
  for (let s = 0; s <= maxStep; s += stepTick) {
    parts.push(`<text x="${x(s)}" y="${H - bottom + 16}" text-anchor="middle">${s}</text>`);
  }
  parts.push(
    `<text x="${(left + W - right) / 2}" y="${H - 6}" text-anchor="middle">step</text>`,
    `<text x="14" y="${(top + H - bottom) / 2}" transform="rotate(-90 14 ${(top + H - bottom) / 2})" text-anchor="middle">loss (MSE)</text>`,
    `<polyline fill="none" stroke="#1f4e9c" stroke-width="1.5" points="${rows
      .map((r, i) => `${x(r.step).toFixed(1)},${y(logs[i]!).toFixed(1)}`)
      .join(' ')}"/>`,
    `<rect x="${left}" y="${top}" width="${W - left - right}" height="${H - top - bottom}" fill="none" stroke="#888"/>`,
    '</svg>',
  );
  return parts.join('\n') + '\n';
}

function table(rows: Row[], window: number): string {
  const out = ['| steps | mean loss |', '| --- | --- |'];
  for (let start = 0; start < rows[rows.length - 1]!.step; start += window) {
    const sel = rows.filter((r) => r.step > start && r.step <= start + window);
    if (sel.length === 0) continue;
    const mean = sel.reduce((a, r) => a + r.loss, 0) / sel.length;
    const end = Math.min(start + window, rows[rows.length - 1]!.step);
    out.push(`| ${start + 1}–${end} | ${mean.toFixed(4)} |`);
  }
  return out.join('\n') + '\n';
}

const [metrics, outSvg] = process.argv.slice(2);
if (metrics === undefined || outSvg === undefined) {
  process.stderr.write('usage: tsx scripts/loss-curve.ts <metrics.jsonl> <out.svg> [--window N]\n');
  process.exit(2);
}
const wi = process.argv.indexOf('--window');
const window = wi > 0 ? Number(process.argv[wi + 1]) : 250;
const rows = readMetrics(metrics);
writeFileSync(outSvg, svg(rows));
process.stdout.write(table(rows, window));
