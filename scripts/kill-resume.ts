/**
 * `sumi train` killed with SIGKILL at random instants and resumed each time ends with the same
 * checkpoint, bit for bit, as a run never interrupted (a script, not part of the test suite):
 *
 *   npx tsx scripts/kill-resume.ts [--kills 20] [--steps 1000] [--save-every 2] [--seed 1]
 *                                  [--max-delay S] [--startup-share P] [--work DIR] [--keep]
 *
 * 1. The reference: a tiny U-Net (two levels of 8 and 16 channels) trained on 8×8 MNIST for
 *    --steps on the CPU backend, uninterrupted, with a checkpoint every --save-every steps.
 * 2. The same command with --resume appended, started --kills times in a fresh output folder at
 *    the same path, each time killed with SIGKILL at a random instant (seeded by --seed): with
 *    probability --startup-share (default 0.2) within start-up, uniformly in [0, S] seconds after
 *    the process starts, S being the reference's start-up time; otherwise uniformly in
 *    [0, --max-delay] seconds after the process logs a step past any logged before (default
 *    1.5 E / kills, E the reference's training time), so that those kills land in training steps
 *    and saves however slow start-up is on a loaded machine. After each kill the checkpoint a
 *    reader takes (findCheckpoint) must load for resuming (setUpTraining) and for sampling
 *    (loadPipeline), and its step must not be lower than after the kill before.
 * 3. The command with --resume once more, to the end.
 *
 * Then: the two output folders hold the same entries; every file of the two checkpoints is the
 * same byte for byte (trainer_state.json apart from its elapsedSeconds); the metrics logs hold
 * each step once and agree on every field but the timings. Exit 0 when all of it holds, 1 when
 * anything does not, 2 for a usage mistake.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

import {
  CHECKPOINT_DIR,
  findCheckpoint,
  loadPipeline,
  METRICS_FILE,
  PREVIOUS_DIR,
  readTrainerState,
  setUpTraining,
  TRAINER_STATE,
} from '../src/diffusion/index.js';
import { cpuBackend, rand, setDefaultBackend } from '../src/engine/index.js';
import { TINY_UNET } from '../src/eval/test-models.js';
import { disposeAll } from '../src/nn/index.js';

const BIN = fileURLToPath(new URL('../bin/sumi.js', import.meta.url));

const TINY = {
  model: { _class_name: 'UNet2DModel', sample_size: 8, ...TINY_UNET },
  scheduler: { num_train_timesteps: 100 },
  train: { image_size: 8, batch_size: 8, lr: 1e-3, warmup_steps: 10 },
};

/** Fields of a metrics line that measure time, not training. */
const TIMING_FIELDS = ['it_per_sec', 'elapsed_s'];

interface Options {
  kills: number;
  steps: number;
  saveEvery: number;
  seed: number;
  maxDelay: number | null;
  startupShare: number;
  work: string | null;
  keep: boolean;
}

const USAGE =
  'usage: npx tsx scripts/kill-resume.ts [--kills N] [--steps N] [--save-every N] [--seed S] ' +
  '[--max-delay S] [--startup-share P] [--work DIR] [--keep]';

function usage(message: string): never {
  console.error(`kill-resume: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

export function parseOptions(argv: readonly string[]): Options {
  const o: Options = {
    kills: 20,
    steps: 1000,
    saveEvery: 2,
    seed: 1,
    maxDelay: null,
    startupShare: 0.2,
    work: null,
    keep: false,
  };
  const ints = { '--kills': 'kills', '--steps': 'steps', '--save-every': 'saveEvery' } as const;
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]!;
    if (name === '--keep') {
      o.keep = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) usage(`${name} needs a value`);
    if (name === '--work') {
      o.work = value;
      continue;
    }
    const v = Number(value);
    if (name in ints) {
      if (!Number.isInteger(v) || v < 1) usage(`${name} takes a positive integer, got ${value}`);
      o[ints[name as keyof typeof ints]] = v;
    } else if (name === '--seed') {
      if (!Number.isSafeInteger(v) || v < 0) usage(`--seed takes an integer >= 0, got ${value}`);
      o.seed = v;
    } else if (name === '--max-delay') {
      if (!(v > 0)) usage(`--max-delay takes seconds > 0, got ${value}`);
      o.maxDelay = v;
    } else if (name === '--startup-share') {
      if (!(v >= 0 && v <= 1)) usage(`--startup-share takes a number from 0 to 1, got ${value}`);
      o.startupShare = v;
    } else {
      usage(`unknown option ${name}`);
    }
  }
  return o;
}

interface Life {
  /** Exit code when the process ended by itself before the kill; null when it was killed. */
  code: number | null;
  stderr: string;
  /** Seconds from the start to the end (the kill). */
  seconds: number;
}

/** When to send SIGKILL: seconds after the start, or after a step past `after` is logged. */
export type KillPlan =
  | { from: 'start'; seconds: number }
  | { from: 'step'; seconds: number; metrics: string; after: number };

/** The step of the last complete line of a metrics log; -1 when there is none. */
export async function lastLoggedStep(metrics: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(metrics, 'utf8');
  } catch {
    return -1;
  }
  const lines = text.split('\n');
  // The text after the last newline is a line still being written.
  for (let i = lines.length - 2; i >= 0; i--) {
    try {
      const step = (JSON.parse(lines[i]!) as { step?: unknown }).step;
      if (typeof step === 'number') return step;
    } catch {
      // a line cut short by an earlier kill, before the resumed run truncates the log
    }
  }
  return -1;
}

/** Runs `sumi train ...args`, killed with SIGKILL as `plan` says unless it ends before. */
function runSumi(args: readonly string[], plan: KillPlan | null): Promise<Life> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, 'train', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, SUMI_BACKEND: 'cpu' },
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    let timer: NodeJS.Timeout | null = null;
    let poll: NodeJS.Timeout | null = null;
    const killIn = (seconds: number): void => {
      timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000);
    };
    if (plan?.from === 'start') killIn(plan.seconds);
    if (plan?.from === 'step') {
      let busy = false;
      poll = setInterval(() => {
        if (busy) return;
        busy = true;
        void lastLoggedStep(plan.metrics).then((step) => {
          busy = false;
          if (step > plan.after && poll !== null) {
            clearInterval(poll);
            poll = null;
            killIn(plan.seconds);
          }
        });
      }, 20);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer !== null) clearTimeout(timer);
      if (poll !== null) clearInterval(poll);
      const seconds = (performance.now() - t0) / 1000;
      if (signal === 'SIGKILL') resolve({ code: null, stderr, seconds });
      else resolve({ code: code ?? 1, stderr, seconds });
    });
  });
}

/** The entries of a folder, [] when it does not exist. */
async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/**
 * Where a save was when the process died, from the entries of the output folder before the
 * process started and after it was killed (a temporary or `checkpoint.old` left by an earlier
 * kill stays until the next save, so only what is new counts).
 */
export function killInstant(before: readonly string[], after: readonly string[]): string {
  const isTmp = (n: string): boolean => n.startsWith('checkpoint.tmp-');
  const current = after.includes(CHECKPOINT_DIR);
  const previous = after.includes(PREVIOUS_DIR) && !before.includes(PREVIOUS_DIR);
  if (after.some((n) => isTmp(n) && !before.includes(n))) {
    return current || after.includes(PREVIOUS_DIR)
      ? 'in a save, writing files'
      : 'in the first save';
  }
  if (previous && !current) return 'in a save, between its renames';
  if (previous) return 'in a save, removing the previous checkpoint';
  return current ? 'between saves' : 'before the first save';
}

/**
 * Loads the checkpoint a reader of `out` takes, as `sumi train --resume` does and as
 * `sumi sample` does; returns its step, or null when there is none yet.
 */
export async function loadSurvivor(out: string): Promise<number | null> {
  const dir = await findCheckpoint(out);
  if (dir === null) return null;
  const setup = await setUpTraining({
    outDir: out,
    resume: true,
    source: null,
    train: {},
    scheduler: {},
  });
  const step = setup.trainer.step;
  setup.trainer.dispose();
  const p = await loadPipeline(out);
  disposeAll(p.model.stateDict());
  const state = await readTrainerState(dir);
  if (state.step !== step || p.info?.step !== step) {
    throw new Error(
      `${dir}: trainer_state.json says step ${state.step}, the trainer ${step}, sumi.json ` +
        `${p.info?.step}`,
    );
  }
  return step;
}

async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(relative(root, p));
    }
  };
  await walk(root);
  return out.sort();
}

/** metrics.jsonl as step → the line without its timing fields; repeated steps are problems. */
async function metricsByStep(path: string, problems: string[]): Promise<Map<number, string>> {
  const byStep = new Map<number, string>();
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (line.trim() === '') continue;
    const rec = JSON.parse(line) as Record<string, unknown>;
    const step = rec.step as number;
    for (const f of TIMING_FIELDS) delete rec[f];
    if (byStep.has(step)) problems.push(`${path}: step ${step} is logged twice`);
    byStep.set(step, JSON.stringify(rec));
  }
  return byStep;
}

/**
 * What differs between two finished output folders (empty when nothing): the entries of the
 * folders, the checkpoint files byte for byte (trainer_state.json without elapsedSeconds), the
 * metrics logs without their timings.
 */
export async function compareRuns(reference: string, resumed: string): Promise<string[]> {
  const problems: string[] = [];
  const top = [await readdir(reference), await readdir(resumed)].map((l) => l.sort().join(', '));
  if (top[0] !== top[1]) problems.push(`output folders differ: [${top[0]}] vs [${top[1]}]`);
  const a = join(reference, CHECKPOINT_DIR);
  const b = join(resumed, CHECKPOINT_DIR);
  const [fa, fb] = [await filesUnder(a), await filesUnder(b)];
  for (const f of fa.filter((x) => !fb.includes(x))) problems.push(`${f}: only in ${reference}`);
  for (const f of fb.filter((x) => !fa.includes(x))) problems.push(`${f}: only in ${resumed}`);
  for (const f of fa.filter((x) => fb.includes(x))) {
    const [x, y] = [await readFile(join(a, f)), await readFile(join(b, f))];
    if (f === TRAINER_STATE) {
      const [sx, sy] = [x, y].map((buf) => {
        const s = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
        delete s.elapsedSeconds;
        return JSON.stringify(s);
      });
      if (sx !== sy) problems.push(`${f}: differs (elapsedSeconds aside)`);
    } else if (!x.equals(y)) {
      const at = x.findIndex((v, i) => v !== y[i]);
      problems.push(
        `${f}: differs (${x.length} vs ${y.length} bytes, first at byte ${at < 0 ? Math.min(x.length, y.length) : at})`,
      );
    }
  }
  const ma = await metricsByStep(join(reference, METRICS_FILE), problems);
  const mb = await metricsByStep(join(resumed, METRICS_FILE), problems);
  if (ma.size !== mb.size) problems.push(`metrics: ${ma.size} steps logged vs ${mb.size}`);
  for (const [step, line] of ma) {
    if (mb.get(step) !== line) {
      problems.push(`metrics: step ${step} differs: ${line} vs ${mb.get(step) ?? 'missing'}`);
      break;
    }
  }
  return problems;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  setDefaultBackend(cpuBackend());
  const work = o.work ?? (await mkdtemp(join(tmpdir(), 'sumi-kill-resume-')));
  await mkdir(work, { recursive: true });
  const config = join(work, 'tiny.json');
  await writeFile(config, `${JSON.stringify(TINY, null, 2)}\n`);
  const out = join(work, 'out');
  const reference = join(work, 'reference');
  for (const p of [out, reference]) await rm(p, { recursive: true, force: true });
  const command = [
    '--data',
    'mnist',
    '--config',
    config,
    '--steps',
    String(o.steps),
    '--save-every',
    String(o.saveEvery),
    '--sample-every',
    '0',
    '--log-every',
    '1',
    '--seed',
    '0',
    '--quiet',
    '--out',
    out,
  ];
  const fail = (message: string): never => {
    console.error(`kill-resume: ${message}`);
    console.error(`kill-resume: the runs are in ${work}`);
    process.exit(1);
  };

  console.log(`kill-resume: ${o.kills} kills, ${o.steps} steps, a checkpoint every ${o.saveEvery}`);
  const ref = await runSumi(command, null);
  if (ref.code !== 0) fail(`the reference run failed (exit ${ref.code}):\n${ref.stderr}`);
  const trainSeconds = (await readTrainerState(join(out, CHECKPOINT_DIR))).elapsedSeconds;
  const startup = Math.max(0, ref.seconds - trainSeconds);
  await rename(out, reference);
  const maxDelay = o.maxDelay ?? (1.5 * trainSeconds) / o.kills;
  console.log(
    `reference: ${ref.seconds.toFixed(1)} s (start-up ${startup.toFixed(1)} s, training ` +
      `${trainSeconds.toFixed(1)} s); kills: ${Math.round(o.startupShare * 100)}% in [0, ` +
      `${startup.toFixed(2)}] s from the start, the others in [0, ${maxDelay.toFixed(2)}] s ` +
      `after the first new step; seed ${o.seed}`,
  );

  // Two uniforms per kill from the Philox stream of --seed: start-up or not, and the delay.
  const u = rand([2 * o.kills], { seed: o.seed, dtype: 'float64' });
  const us = Array.from(u.dataSync());
  u.dispose();
  const draw = (): number => us.shift()!;
  const metrics = join(out, METRICS_FILE);
  const instants = new Map<string, number>();
  let last = -1;
  let kills = 0;
  for (let i = 1; i <= o.kills; i++) {
    const inStartup = draw() < o.startupShare;
    // Lines logged after the checkpoint by the life before stay until this one truncates the
    // log: its own steps count once it logs past them.
    const logged = await lastLoggedStep(metrics);
    const plan: KillPlan = inStartup
      ? { from: 'start', seconds: startup * draw() }
      : { from: 'step', seconds: maxDelay * draw(), metrics, after: Math.max(last, logged) };
    const before = await entries(out);
    const life = await runSumi([...command, '--resume'], plan);
    const when =
      `${life.seconds.toFixed(2)} s` +
      (plan.from === 'step' ? ` (${plan.seconds.toFixed(2)} s after its first step)` : '');
    if (life.code !== null) {
      if (life.code !== 0) fail(`life ${i} failed (exit ${life.code}):\n${life.stderr}`);
      console.log(`life ${i}: finished at ${when}, before its kill; no more kills`);
      break;
    }
    kills++;
    const where = killInstant(before, await entries(out));
    let step: number | null;
    try {
      step = await loadSurvivor(out);
    } catch (e) {
      return fail(
        `after kill ${i} (${where}) the checkpoint does not load: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    if ((step ?? -1) < last) {
      fail(
        `after kill ${i} the checkpoint is ${step === null ? 'gone' : `at step ${step}`}; ` +
          `it was at step ${last}`,
      );
    }
    // A life that leaves the checkpoint as it found it died in start-up or before its first save.
    const instant =
      (where === 'between saves' || where === 'before the first save') && step === last
        ? 'before a save of its own'
        : where;
    last = step ?? -1;
    instants.set(instant, (instants.get(instant) ?? 0) + 1);
    console.log(
      `kill ${String(i).padStart(2)} at ${when}: ${instant}; ` +
        `checkpoint ${step === null ? 'none yet' : `at step ${step}, loads`}`,
    );
  }
  const end = await runSumi([...command, '--resume'], null);
  if (end.code !== 0) fail(`the last resume failed (exit ${end.code}):\n${end.stderr}`);

  const problems = await compareRuns(reference, out);
  const summary = [...instants].map(([w, n]) => `${n} ${w}`).join(', ');
  console.log(`${kills} kill${kills === 1 ? '' : 's'}: ${summary === '' ? 'none' : summary}`);
  if (problems.length > 0) fail(`the runs differ:\n  ${problems.join('\n  ')}`);
  const files = await filesUnder(join(out, CHECKPOINT_DIR));
  console.log(
    `kill-resume: the resumed run equals the reference at step ${o.steps}: ${files.length} ` +
      'checkpoint files byte for byte (trainer_state.json apart from elapsedSeconds), ' +
      'metrics of every step',
  );
  if (o.keep || o.work !== null) console.log(`kill-resume: the runs are in ${work}`);
  else await rm(work, { recursive: true, force: true });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
