/**
 * The one progress display of every command, on stderr: a status line redrawn in place when the
 * stream is a terminal (at most every 100 ms, and always at the end), otherwise plain lines at
 * intervals so that logs stay readable. `Progress` shows counted work (`label: done/total,
 * elapsed, ETA`), `ProgressReporter` a training run's steps with their loss; both draw through
 * one `StatusLine`. Messages printed through them appear above the line.
 *
 * Hand-written rather than cli-progress: the two layouts, the plain lines off a terminal and the
 * messages above the line take 150 lines here; the library would replace only the redraw.
 */
import type { Progress as TrainProgress } from '../diffusion/index.js';
import { formatDuration } from './common.js';

export interface StatusLineOptions {
  /** Nothing is written (--quiet). */
  quiet?: boolean;
  /** Redraw in place (default: whether the stream is a TTY). */
  tty?: boolean;
  stream?: NodeJS.WriteStream;
}

/** A line redrawn in place on a terminal; on other streams, lines the caller chooses to print. */
export class StatusLine {
  readonly tty: boolean;
  readonly #stream: NodeJS.WriteStream;
  readonly #quiet: boolean;
  #lastDraw = 0;
  #drawn = false;

  constructor(opts: StatusLineOptions = {}) {
    this.#stream = opts.stream ?? process.stderr;
    this.#quiet = opts.quiet === true;
    this.tty = opts.tty ?? this.#stream.isTTY === true;
  }

  /** The terminal's width (100 when unknown). */
  get columns(): number {
    return Math.max(40, this.#stream.columns || 100);
  }

  /**
   * Shows `text`: on a terminal it replaces the line (skipped within 100 ms of the last draw
   * unless `final`); elsewhere it is printed as a line when `print` is true.
   */
  show(text: string, opts: { final?: boolean; print?: boolean } = {}): void {
    if (this.#quiet) return;
    if (this.tty) {
      const now = performance.now();
      if (now - this.#lastDraw < 100 && opts.final !== true) return;
      this.#lastDraw = now;
      this.#stream.write(`\r\x1b[2K${text.slice(0, this.columns + 6)}`);
      this.#drawn = true;
    } else if (opts.print === true) {
      this.#stream.write(`${text}\n`);
    }
  }

  /** Prints a line above the status line. */
  message(line: string): void {
    if (this.#quiet) return;
    if (this.#drawn) {
      this.#stream.write(`\r\x1b[2K${line}\n`);
      this.#lastDraw = 0;
    } else {
      this.#stream.write(`${line}\n`);
    }
  }

  /** Erases the status line. */
  clear(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
  }

  /** Ends the status line, keeping it on screen. */
  finish(): void {
    if (this.#drawn) this.#stream.write('\n');
    this.#drawn = false;
  }
}

/**
 * Counted work: `label: [detail, ]done/total, elapsed, ETA`, redrawn in place on a terminal,
 * otherwise a line at every tenth of the work; nothing with `quiet`. A new label restarts the
 * clock.
 */
export class Progress {
  readonly #line: StatusLine;
  #what = '';
  #t0 = 0;
  #lastTenth = -1;

  constructor(quiet: boolean, opts: Omit<StatusLineOptions, 'quiet'> = {}) {
    this.#line = new StatusLine({ ...opts, quiet });
  }

  update(what: string, done: number, total: number, detail?: string): void {
    if (what !== this.#what) {
      this.#what = what;
      this.#t0 = performance.now();
      this.#lastTenth = -1;
    }
    const secs = (performance.now() - this.#t0) / 1000;
    const eta = done > 0 ? formatDuration((secs / done) * (total - done)) : '?';
    const of = detail !== undefined ? `${detail}, ` : '';
    const text = `${what}: ${of}${done}/${total}, ${formatDuration(secs)}, ETA ${eta}`;
    const tenth = total > 0 ? Math.floor((10 * done) / total) : 10;
    const print = tenth !== this.#lastTenth;
    if (print) this.#lastTenth = tenth;
    this.#line.show(text, { final: done >= total, print });
  }

  /** A line above the progress line. */
  note(line: string): void {
    this.#line.message(line);
  }

  clear(): void {
    this.#line.clear();
  }
}

export interface ProgressOptions extends Omit<StatusLineOptions, 'quiet'> {
  /** Steps between plain lines (non-TTY). */
  every: number;
}

function fmtLoss(v: number): string {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(4) : v.toExponential(2);
}

/**
 * A training run's progress: on a terminal a bar with the step, loss, learning rate, speed and
 * ETA; otherwise that text every `every` steps and at the last one.
 */
export class ProgressReporter {
  readonly #line: StatusLine;
  readonly #every: number;

  constructor(opts: ProgressOptions) {
    this.#line = new StatusLine(opts);
    this.#every = Math.max(1, opts.every);
  }

  static describe(p: TrainProgress): string {
    const pct = ((100 * p.step) / p.total).toFixed(0).padStart(3);
    return (
      `step ${p.step}/${p.total} ${pct}% loss ${fmtLoss(p.loss)} (avg ${fmtLoss(p.smoothLoss)})` +
      ` lr ${p.lr.toExponential(2)}` +
      (p.gradNorm !== null ? ` |g| ${p.gradNorm.toFixed(3)}` : '') +
      ` ${p.itPerSec.toFixed(2)} it/s ETA ${formatDuration(p.etaSeconds)}`
    );
  }

  update(p: TrainProgress, end: number): void {
    const text = ProgressReporter.describe(p);
    const final = p.step >= end;
    if (this.#line.tty) {
      const barWidth = Math.max(10, Math.min(30, this.#line.columns - text.length - 4));
      const filled = Math.round((barWidth * p.step) / p.total);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]`;
      this.#line.show(`${bar} ${text}`, { final });
    } else {
      this.#line.show(text, { print: p.step % this.#every === 0 || p.step === end });
    }
  }

  /** Prints a line above the bar. */
  message(line: string): void {
    this.#line.message(line);
  }

  /** Ends the bar's line. */
  finish(): void {
    this.#line.finish();
  }
}
