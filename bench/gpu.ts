/**
 * The GPU check: Sumi on WebGPU beside PyTorch CUDA, for a machine with an NVIDIA GPU (a
 * benchmark, never a test). See ../shared/docs/gpu.md for such a machine; there, after
 * `source .gpu/prelude.sh`, run it as `node node_modules/tsx/dist/cli.mjs bench/gpu.ts`.
 *
 *   npm run bench:gpu [-- [--out DIR] [--small] [--models mnist-small,ddpm-cifar10]
 *                        [--steps N] [--iters N] [--budget-s S] [--python PATH]]
 *
 * Per model (randomly initialised from presets/<name>/config.json): a training step (forward,
 * MSE on ε, backward, AdamW) and sampling with DPM-Solver++(2M) (`--steps`, default 20). Batches:
 * mnist-small trains at 32 and ddpm-cifar10 at 128 (their training batches); both sample 64
 * images. `--small` shrinks the batches to what lavapipe (CPU Vulkan) finishes in minutes.
 *
 * PyTorch runs first (bench/torch_ref.py --models: the same work on bench/torch_unet.py's plain
 * copy of UNet2DModel, fp32, TF32 off), then Sumi, each row timed as warm-up, one call, then as
 * many calls back to back as fit its share of `--budget-s` (default 500, so that one device
 * call of 10 minutes holds the whole run), until the device is idle. Last, mnist-small's shipped
 * weights run on both sides on a fixed batch, and the outputs and gradients must agree to a
 * relative L2 of 1e-5.
 *
 * Writes gpu-bench.json and gpu-bench.md to `--out` (default $OUT), rewritten after every row so
 * that a run cut short still leaves what it measured, and torch.log. No WebGPU adapter, no CUDA,
 * no python3 or a failing row: the report says so and the rest still runs. Exit status 1 when
 * nothing could be measured or the parity check failed.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { createWebGpuBackend, type WebGpuBackend } from '../src/engine/backends/webgpu/index.js';
import { add, Generator, mean, mul, randn, square, sub, tidy } from '../src/engine/index.js';
import { createSampler, generate } from '../src/diffusion/pipeline.js';
import { AdamW } from '../src/nn/index.js';
import { createModel, loadModel, UNet2DModel, writeTextAtomic } from '../src/nn/models/index.js';
import { writeParityFile } from './parity-file.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TORCH_SCRIPT = join(ROOT, 'bench', 'torch_ref.py');
const PARITY_MODEL = join(ROOT, 'models', 'mnist-small', 'unet');

/** Training and sampling batches per model: [full, --small]. */
const MODELS = {
  'mnist-small': { train: [32, 4], sample: [64, 4] },
  'ddpm-cifar10': { train: [128, 1], sample: [64, 1] },
} as const;
type ModelName = keyof typeof MODELS;

interface Options {
  out: string;
  small: boolean;
  models: ModelName[];
  steps: number;
  iters: number;
  budgetS: number;
  python: string;
}

interface Row {
  /** `<model>/train` or `<model>/sample`. */
  id: string;
  work: string;
  shape: string;
  batch: number;
  torchMs: number | null;
  sumiMs: number | null;
  torchIters?: number;
  sumiIters?: number;
  sumiWarmS?: number;
}

interface Report {
  date: string;
  small: boolean;
  steps: number;
  sumi: { adapter: string | null; subgroups?: boolean; note?: string };
  torch: { version: string | null; device: string | null; note?: string };
  parity: { outRelL2?: number; gradRelL2?: number; tolerance?: number; note?: string } | null;
  rows: Row[];
  notes: string[];
}

class UsageError extends Error {}

const USAGE =
  'usage: npm run bench:gpu -- [--out DIR] [--small] [--models mnist-small,ddpm-cifar10] ' +
  '[--steps N] [--iters N] [--budget-s S] [--python PATH]';

function parseArgs(argv: readonly string[]): Options {
  let out = process.env.OUT ?? null;
  const o: Omit<Options, 'out'> = {
    small: false,
    models: Object.keys(MODELS) as ModelName[],
    steps: 20,
    iters: 10,
    budgetS: 500,
    python: 'python3',
  };
  const count = (flag: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`${flag}: expected a positive integer, got '${v}'`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--help' || flag === '-h') throw new UsageError(USAGE);
    if (flag === '--small') {
      o.small = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined || value.startsWith('--')) {
      throw new UsageError(`${flag}: missing value (${USAGE})`);
    }
    if (flag === '--out') out = value;
    else if (flag === '--steps') o.steps = count(flag, value);
    else if (flag === '--iters') o.iters = count(flag, value);
    else if (flag === '--budget-s') o.budgetS = count(flag, value);
    else if (flag === '--python') o.python = value;
    else if (flag === '--models') {
      const names = value.split(',');
      const bad = names.filter((n) => !(n in MODELS));
      if (bad.length > 0) {
        throw new UsageError(
          `--models: unknown ${bad.join(', ')} (known: ${Object.keys(MODELS).join(', ')})`,
        );
      }
      o.models = names as ModelName[];
    } else throw new UsageError(`unknown option ${flag} (${USAGE})`);
  }
  if (out === null || out === '') throw new UsageError(`--out DIR is needed when OUT is not set`);
  return { ...o, out };
}

function batches(o: Options, name: ModelName): { train: number; sample: number } {
  const k = o.small ? 1 : 0;
  return { train: MODELS[name].train[k], sample: MODELS[name].sample[k] };
}

type Config = Record<string, unknown>;

/** "B64 3×32×32" */
function shapeOf(config: Config, batch: number): string {
  const size = Number(config.sample_size);
  return `B${batch} ${Number(config.in_channels)}×${size}×${size}`;
}

/** Runs a command with stdout and stderr appended to `log`; resolves with its status. */
function runLogged(
  cmd: string,
  args: readonly string[],
  log: string,
  timeoutS: number,
): Promise<{ code: number | null; stdout: string; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    const file = createWriteStream(log, { flags: 'a' });
    file.write(`$ ${cmd} ${args.join(' ')}\n`);
    const child = spawn(cmd, args, { env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      file.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      file.write(d);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      file.end();
      resolve({ code: null, stdout, stderr, error: e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      file.end();
      const error = timedOut ? `stopped after ${timeoutS} s` : undefined;
      resolve({ code, stdout, stderr, ...(error === undefined ? {} : { error }) });
    });
  });
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

/** Why a python run gave nothing: no interpreter, no torch, no CUDA, a timeout or an error. */
function torchFailure(r: { code: number | null; stderr: string; error?: string }, python: string) {
  if (r.error !== undefined && r.code === null && r.stderr === '') return `${python}: ${r.error}`;
  if (r.error !== undefined) return `PyTorch run ${r.error}`;
  const why = lastLine(r.stderr) || `exit status ${r.code}`;
  return r.code === 3 ? why.replace(/^torch_ref\.py: /, '') : `PyTorch run failed: ${why}`;
}

/** The PyTorch rows (bench/torch_ref.py --models), or why there are none. */
async function torchRows(o: Options, report: Report, budgetS: number): Promise<void> {
  const spec = o.models.map((n) => `${n}:${batches(o, n).train}:${batches(o, n).sample}`).join(',');
  const json = join(o.out, 'torch.json');
  const args = [
    TORCH_SCRIPT,
    '--models',
    spec,
    '--steps',
    String(o.steps),
    '--iters',
    String(o.iters),
    '--budget-s',
    String(Math.max(10, budgetS - 60)),
    '--json',
    json,
  ];
  if (o.small) args.push('--small');
  const r = await runLogged(o.python, args, join(o.out, 'torch.log'), budgetS);
  if (r.code !== 0 || !existsSync(json)) {
    report.torch.note = torchFailure(r, o.python);
    return;
  }
  const doc = JSON.parse(await readFile(json, 'utf8')) as {
    torch: string;
    device: string;
    rows: { id: string; ms: number; iters: number }[];
  };
  await rm(json, { force: true });
  report.torch.version = doc.torch;
  report.torch.device = doc.device;
  for (const t of doc.rows) {
    const row = report.rows.find((x) => x.id === t.id);
    if (row !== undefined) {
      row.torchMs = t.ms;
      row.torchIters = t.iters;
    }
  }
}

interface Timing {
  ms: number;
  iters: number;
  /** Seconds of the untimed warm-up (pipeline compilation included). */
  warmS: number;
}

/**
 * ms per call: an untimed warm-up, one timed call, then as many more back to back as fit
 * before `share` (at most `iters` in all), timed until the device is idle. Returns why instead
 * when `end` (the whole run's deadline) has passed, or the warm-up leaves no time for a call.
 */
async function timeBox(
  gpu: WebGpuBackend,
  fn: () => void,
  o: { iters: number; share: number; end: number; warm?: () => void },
): Promise<Timing | string> {
  if (performance.now() >= o.end) return 'skipped: out of time';
  let t0 = performance.now();
  (o.warm ?? fn)();
  await gpu.sync();
  const warm = performance.now() - t0;
  if (performance.now() + warm > o.end) {
    return `skipped: the warm-up took ${(warm / 1000).toFixed(0)} s, no time left to time a call`;
  }
  t0 = performance.now();
  fn();
  await gpu.sync();
  const one = performance.now() - t0;
  const n = Math.floor(
    Math.min(o.iters - 1, (o.share - performance.now()) / Math.max(one, 1e-3) - 1),
  );
  if (n < 1) return { ms: one, iters: 1, warmS: warm / 1000 };
  t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  await gpu.sync();
  return { ms: (performance.now() - t0) / n, iters: n, warmS: warm / 1000 };
}

function disposeModel(model: UNet2DModel): void {
  for (const p of model.parameters()) {
    p.grad?.dispose();
    p.dispose();
  }
}

/** Sumi's rows on WebGPU, each given its share of the time left before `deadline`. */
async function sumiRows(
  gpu: WebGpuBackend,
  o: Options,
  configs: ReadonlyMap<ModelName, Config>,
  report: Report,
  deadline: number,
  save: () => Promise<void>,
): Promise<void> {
  let left = report.rows.length;
  const share = () => performance.now() + (deadline - performance.now()) / Math.max(1, left--);
  const record = (row: Row, t: Timing | string) => {
    if (typeof t === 'string') {
      report.notes.push(`Sumi ${row.id}: ${t}`);
    } else {
      row.sumiMs = t.ms;
      row.sumiIters = t.iters;
      row.sumiWarmS = t.warmS;
    }
    const what =
      typeof t === 'string'
        ? t
        : `${t.ms.toFixed(1)} ms (${t.iters} timed, warm-up ${t.warmS.toFixed(1)} s)`;
    process.stderr.write(`bench:gpu: ${row.id}: ${what}\n`);
  };
  for (const name of o.models) {
    const b = batches(o, name);
    const config = configs.get(name)!;
    const [c, s] = [Number(config.in_channels), Number(config.sample_size)];
    let model: UNet2DModel | null = null;
    try {
      model = createModel(config, { generator: new Generator(0) }) as UNet2DModel;
      await model.to({ backend: gpu });
      model.train();
      const opt = new AdamW(model, { lr: 1e-4 });
      let seed = 0;
      const m = model;
      const step = () =>
        tidy(() => {
          seed++;
          const x0 = randn([b.train, c, s, s], { seed, backend: gpu });
          const noise = randn([b.train, c, s, s], { seed: seed + 1e6, backend: gpu });
          const t = Array.from({ length: b.train }, (_, i) => (seed * 37 + i * 101) % 1000);
          const loss = mean(square(sub(m.forward(add(mul(x0, 0.8), mul(noise, 0.6)), t), noise)));
          loss.backward();
          opt.step();
          m.zeroGrad();
        });
      const train = report.rows.find((r) => r.id === `${name}/train`)!;
      record(train, await timeBox(gpu, step, { iters: o.iters, share: share(), end: deadline }));
      opt.dispose();
      await save();

      model.eval();
      const sampler = createSampler('dpmpp-2m', {});
      const run = (steps: number) => () => {
        seed++;
        generate(m, sampler, { n: b.sample, seed, numInferenceSteps: steps }).dispose();
      };
      const sample = report.rows.find((r) => r.id === `${name}/sample`)!;
      // A 3-step warm-up compiles every pipeline (step 2 is the first second-order update).
      const warm = run(Math.min(3, o.steps));
      const opts = { iters: o.iters, share: share(), end: deadline, warm };
      record(sample, await timeBox(gpu, run(o.steps), opts));
      await save();
    } catch (e) {
      report.notes.push(`Sumi ${name}: failed: ${e instanceof Error ? e.message : String(e)}`);
      await save();
    } finally {
      if (model !== null) disposeModel(model);
    }
  }
}

/** mnist-small's shipped weights on WebGPU against the PyTorch copy on CUDA. */
async function parityCheck(gpu: WebGpuBackend, o: Options, report: Report): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sumi-bench-gpu-'));
  try {
    const model = await loadModel(PARITY_MODEL, { as: UNet2DModel, backend: gpu });
    const file = join(dir, 'parity.safetensors');
    await writeParityFile(model, file);
    disposeModel(model);
    const args = [TORCH_SCRIPT, '--check', file, '--model', PARITY_MODEL];
    const r = await runLogged(o.python, args, join(o.out, 'torch.log'), 120);
    if (r.code === 0) {
      report.parity = JSON.parse(lastLine(r.stdout)) as Report['parity'];
    } else {
      report.parity = { note: torchFailure(r, o.python) };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function fmtMs(ms: number | null, batch: number): string {
  if (ms === null) return '–';
  const t = ms >= 100 ? Math.round(ms).toLocaleString('en-US') : ms.toPrecision(3);
  const rate = batch / (ms / 1000);
  return `${t} ms (${rate >= 100 ? Math.round(rate).toLocaleString('en-US') : rate.toPrecision(3)} img/s)`;
}

function markdown(r: Report): string {
  const lines = [
    `# Sumi WebGPU beside PyTorch CUDA (${r.date}${r.small ? ', --small' : ''})`,
    '',
    `- WebGPU adapter: ${r.sumi.adapter ?? 'none'}` +
      (r.sumi.subgroups === undefined ? '' : ` (subgroups ${r.sumi.subgroups})`) +
      (r.sumi.note === undefined ? '' : `: ${r.sumi.note}`),
    `- PyTorch: ${r.torch.version === null ? 'none' : `${r.torch.version} on ${r.torch.device}, fp32, TF32 off`}` +
      (r.torch.note === undefined ? '' : `: ${r.torch.note}`),
  ];
  const p = r.parity;
  if (p === null) lines.push('- parity: not checked (needs both sides)');
  else if (p.note !== undefined) lines.push(`- parity: ${p.note}`);
  else {
    lines.push(
      `- parity (mnist-small weights, B4, relative L2): output ${p.outRelL2!.toExponential(1)}, ` +
        `gradients ${p.gradRelL2!.toExponential(1)} (tolerance ${p.tolerance!.toExponential(0)})`,
    );
  }
  lines.push(
    `- sampling: DPM-Solver++(2M), ${r.steps} steps; each figure is ms per call (a training ` +
      'step, or a whole sampling run)',
    '',
    '| work | shape | PyTorch CUDA | Sumi WebGPU | Sumi / PyTorch |',
    '|---|---|---:|---:|---:|',
  );
  for (const row of r.rows) {
    const ratio =
      row.torchMs === null || row.sumiMs === null
        ? '–'
        : `${(row.sumiMs / row.torchMs).toFixed(2)}×`;
    lines.push(
      `| ${row.work} | ${row.shape} | ${fmtMs(row.torchMs, row.batch)} | ` +
        `${fmtMs(row.sumiMs, row.batch)} | ${ratio} |`,
    );
  }
  if (r.notes.length > 0) lines.push('', ...r.notes.map((n) => `- ${n}`));
  return lines.join('\n') + '\n';
}

async function main(o: Options): Promise<number> {
  const start = performance.now();
  const deadline = start + o.budgetS * 1000;
  await mkdir(o.out, { recursive: true });
  const configs = new Map<ModelName, Config>();
  for (const name of o.models) {
    const path = join(ROOT, 'presets', name, 'config.json');
    configs.set(name, JSON.parse(await readFile(path, 'utf8')) as Config);
  }
  const report: Report = {
    date: new Date().toISOString(),
    small: o.small,
    steps: o.steps,
    sumi: { adapter: null },
    torch: { version: null, device: null },
    parity: null,
    rows: o.models.flatMap((name) => {
      const b = batches(o, name);
      return [
        {
          id: `${name}/train`,
          work: `${name} training step (fwd + bwd + AdamW)`,
          shape: shapeOf(configs.get(name)!, b.train),
          batch: b.train,
          torchMs: null,
          sumiMs: null,
        },
        {
          id: `${name}/sample`,
          work: `${name} sampling, ${o.steps} DPM++ steps`,
          shape: shapeOf(configs.get(name)!, b.sample),
          batch: b.sample,
          torchMs: null,
          sumiMs: null,
        },
      ];
    }),
    notes: [],
  };
  const save = async () => {
    await writeTextAtomic(join(o.out, 'gpu-bench.json'), JSON.stringify(report, null, 2) + '\n');
    await writeTextAtomic(join(o.out, 'gpu-bench.md'), markdown(report));
  };
  const say = (s: string) => process.stderr.write(`bench:gpu: ${s}\n`);

  // PyTorch first: it is quick and does not depend on Dawn; about a third of the budget.
  say('PyTorch CUDA rows…');
  await torchRows(o, report, Math.round(o.budgetS * 0.35));
  if (report.torch.note !== undefined) say(`PyTorch: ${report.torch.note}`);
  await save();

  const gpu = await createWebGpuBackend();
  if (gpu === null) {
    report.sumi.note =
      'no WebGPU adapter (Dawn found no Vulkan device; on the GPU machine source ' +
      '.gpu/prelude.sh, which sets VK_DRIVER_FILES to the NVIDIA ICD)';
    say(report.sumi.note);
  } else {
    report.sumi.adapter = gpu.adapterName;
    report.sumi.subgroups = gpu.subgroups;
    if (/llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName)) {
      report.sumi.note = 'a CPU Vulkan driver, not a GPU: these are not GPU figures';
    }
    say(`Sumi WebGPU rows on ${gpu.adapterName}…`);
    // Keep 60 s for the parity check at the end.
    await sumiRows(gpu, o, configs, report, deadline - 60_000, save);
    if (report.torch.version !== null) {
      say('parity check…');
      try {
        await parityCheck(gpu, o, report);
      } catch (e) {
        report.parity = { note: `failed: ${e instanceof Error ? e.message : String(e)}` };
      }
    }
  }
  report.notes.push(`total ${((performance.now() - start) / 1000).toFixed(0)} s`);
  await save();
  process.stdout.write(markdown(report));
  const measured = report.rows.some((r) => r.torchMs !== null || r.sumiMs !== null);
  const parityFailed = report.parity?.note !== undefined;
  return measured && !parityFailed ? 0 : 1;
}

let options: Options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  process.stderr.write(`bench:gpu: ${e.message}\n`);
  process.exit(2);
}
try {
  process.exit(await main(options));
} catch (e) {
  process.stderr.write(`bench:gpu: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
