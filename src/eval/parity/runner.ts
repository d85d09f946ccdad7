/**
 * The parity runner: walks a directory laid out like the diffusers fixtures, runs every fixture a
 * registered kind understands, and reports one line per fixture and a summary `N passed, M failed`.
 * A fixture that no kind understands counts as failed. Driven by the files, never their names.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, relative } from 'node:path';
import { cpuBackend } from '../../engine/index.js';
import {
  detectKind,
  describeCandidate,
  type FixtureCandidate,
  type RecordResult,
  type RunContext,
} from './kinds.js';

export interface FixtureOutcome {
  name: string;
  /** The kind that ran it; null when not understood. */
  kind: string | null;
  records: RecordResult[];
  ok: boolean;
  /** Why it failed outright (not understood, or an exception). */
  error?: string;
  seconds: number;
}

export interface ParitySummary {
  fixtures: FixtureOutcome[];
  passed: number;
  failed: number;
}

export interface ParityOptions extends Partial<RunContext> {
  /** Receives each output line as it is produced. */
  log?: (line: string) => void;
  /** Print every record, not only the failed ones. */
  verbose?: boolean;
}

async function walk(path: string, out: string[]): Promise<string[]> {
  const st = await stat(path);
  if (!st.isDirectory()) {
    out.push(path);
    return out;
  }
  const names = (await readdir(path)).sort();
  for (const name of names) await walk(join(path, name), out);
  return out;
}

/** Every JSON file with a same-named .safetensors beside it, in path order. */
export async function findFixtures(root: string): Promise<FixtureCandidate[]> {
  const files = await walk(root, []);
  const set = new Set(files);
  const base = (await stat(root)).isDirectory() ? root : dirname(root);
  const out: FixtureCandidate[] = [];
  for (const f of files) {
    if (extname(f) !== '.json') continue;
    const tensorsPath = join(dirname(f), `${basename(f, '.json')}.safetensors`);
    if (!set.has(tensorsPath) && !existsSync(tensorsPath)) continue;
    const json: unknown = JSON.parse(await readFile(f, 'utf8'));
    if (json === null || typeof json !== 'object' || Array.isArray(json)) continue;
    const name = relative(base, f).replace(/\.json$/, '') || basename(f, '.json');
    out.push({ jsonPath: f, tensorsPath, name, json: json as Record<string, unknown> });
  }
  return out;
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toExponential(2) : String(x));

/** The tolerance as printed: its value, and where it comes from when a record says. */
function tolText(tolerance: number, note: string | undefined): string {
  return `tol ${fmt(tolerance)}${note !== undefined ? ` = ${note}` : ''}`;
}

function recordLine(r: RecordResult): string {
  const what = r.metric === 'count' ? `off by ${r.error}` : `${r.metric} ${fmt(r.error)}`;
  const tol = r.metric === 'count' ? 'tol 0' : tolText(r.tolerance, r.toleranceNote);
  return `    ${r.ok ? 'ok  ' : 'FAIL'} ${r.name}: ${what} (${tol})`;
}

/** One line per fixture: status, name, kind, and the worst error per tolerance class. */
export function fixtureLine(f: FixtureOutcome): string {
  const head = `${f.ok ? 'PASS' : 'FAIL'} ${f.name}`;
  if (f.error !== undefined) return `${head}: ${f.error}`;
  const byTol = new Map<number, { worst: number; note?: string }>();
  for (const r of f.records) {
    if (r.metric === 'count') continue;
    const prev = byTol.get(r.tolerance) ?? { worst: 0 };
    const worst = Number.isNaN(r.error) || r.error > prev.worst ? r.error : prev.worst;
    byTol.set(r.tolerance, { worst, note: prev.note ?? r.toleranceNote });
  }
  const worst = [...byTol.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([t, e]) => `max err ${fmt(e.worst)} (${tolText(t, e.note)})`)
    .join(', ');
  const failed = f.records.filter((r) => !r.ok).length;
  const counts = `${f.records.length} records${failed > 0 ? `, ${failed} failed` : ''}`;
  return `${head} [${f.kind}] ${counts}; ${worst} ${f.seconds.toFixed(2)}s`;
}

/** Runs every fixture under `root` (a directory or one fixture's JSON file). */
export async function runParity(root: string, opts: ParityOptions = {}): Promise<ParitySummary> {
  const ctx: RunContext = { backend: opts.backend ?? cpuBackend(), dtype: opts.dtype ?? 'float64' };
  const log = opts.log ?? ((): void => undefined);
  const fixtures: FixtureOutcome[] = [];
  for (const c of await findFixtures(root)) {
    const kind = detectKind(c);
    const t0 = performance.now();
    let outcome: FixtureOutcome;
    if (kind === null) {
      outcome = {
        name: c.name,
        kind: null,
        records: [],
        ok: false,
        error: `fixture kind not understood (${describeCandidate(c)})`,
        seconds: 0,
      };
    } else {
      try {
        const records = await kind.run(c, ctx);
        outcome = {
          name: c.name,
          kind: kind.name,
          records,
          ok: records.length > 0 && records.every((r) => r.ok),
          seconds: (performance.now() - t0) / 1000,
        };
        if (records.length === 0) outcome.error = 'no records checked';
      } catch (e) {
        outcome = {
          name: c.name,
          kind: kind.name,
          records: [],
          ok: false,
          error: `error: ${e instanceof Error ? e.message : String(e)}`,
          seconds: (performance.now() - t0) / 1000,
        };
      }
    }
    fixtures.push(outcome);
    log(fixtureLine(outcome));
    for (const r of outcome.records) if (opts.verbose === true || !r.ok) log(recordLine(r));
  }
  const passed = fixtures.filter((f) => f.ok).length;
  const failed = fixtures.length - passed;
  log(`${passed} passed, ${failed} failed`);
  return { fixtures, passed, failed };
}
