/**
 * Training progress on stderr: a bar redrawn in place when stderr is a terminal, otherwise a
 * plain line every `every` steps (and at the last one), so logs stay readable.
 */
import type { Progress } from '../diffusion/index.js';
import { formatDuration } from './common.js';

export interface ProgressOptions {
  /** Draw a bar in place (default: whether the stream is a TTY). */
  tty?: boolean;
  /** Steps between plain lines (non-TTY). */
  every: number;
  stream?: NodeJS.WriteStream;
}

function fmtLoss(v: number): string {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(4) : v.toExponential(2);
}

export class ProgressReporter {
  readonly #stream: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #every: number;
  #lastDraw = 0;
  #drawn = false;

  constructor(opts: ProgressOptions) {
    this.#stream = opts.stream ?? process.stderr;
    this.#tty = opts.tty ?? this.#stream.isTTY === true;
    this.#every = Math.max(1, opts.every);
  }

  static describe(p: Progress): string {
    const pct = ((100 * p.step) / p.total).toFixed(0).padStart(3);
    return (
      `step ${p.step}/${p.total} ${pct}% loss ${fmtLoss(p.loss)} (avg ${fmtLoss(p.smoothLoss)})` +
      ` lr ${p.lr.toExponential(2)}` +
      (p.gradNorm !== null ? ` |g| ${p.gradNorm.toFixed(3)}` : '') +
      ` ${p.itPerSec.toFixed(2)} it/s ETA ${formatDuration(p.etaSeconds)}`
    );
  }

  update(p: Progress, end: number): void {
    if (this.#tty) {
      const now = performance.now();
      if (now - this.#lastDraw < 100 && p.step < end) return;
      this.#lastDraw = now;
      const cols = Math.max(40, this.#stream.columns || 100);
      const text = ProgressReporter.describe(p);
      const barWidth = Math.max(10, Math.min(30, cols - text.length - 4));
      const filled = Math.round((barWidth * p.step) / p.total);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]`;
      this.#stream.write(`\r\x1b[2K${bar} ${text}`.slice(0, cols + 6));
      this.#drawn = true;
    } else if (p.step % this.#every === 0 || p.step === end) {
      this.#stream.write(`${ProgressReporter.describe(p)}\n`);
    }
  }

  /** Prints a line above the bar. */
  message(line: string): void {
    if (this.#tty && this.#drawn) {
      this.#stream.write(`\r\x1b[2K${line}\n`);
      this.#lastDraw = 0;
    } else {
      this.#stream.write(`${line}\n`);
    }
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\n');
    this.#drawn = false;
  }
}
