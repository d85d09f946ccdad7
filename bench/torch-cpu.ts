/**
 * Sumi's CPU backend beside PyTorch on the CPU, on the same work (a benchmark, never a test).
 *
 *   npm run bench:torch [-- [--rounds N] [--per-round K] [--rows a,b] [--json FILE]
 *                          [--python PATH] [--torch-threads N]]
 *
 * The PyTorch side is bench/torch_cpu.py, run by Debian's python3 (`apt-get install
 * python3-torch libopenblas0-pthread`) with torch.set_num_threads(2) and kept alive for the whole
 * run; Sumi runs in this process on the CPU backend with its default threads. Before timing, a
 * plain-torch copy of mnist-small (bench/torch_unet.py) loads the same safetensors and must give
 * Sumi's output and gradients on a fixed input to a relative L2 of 1e-5 (the two sides meet
 * through a temporary safetensors file), or the run stops.
 *
 * Rows: the mnist-small training step (batch 32, forward + MSE + backward + AdamW), the forward
 * pass at batch 64 without gradients (one sampler step), the demo's sampling (64 digits, 20
 * DPM-Solver++(2M) steps; Sumi with its sampling replica, started and stopped within each sample as
 * `sumi sample` does), matmul 512³,
 * and a 3×3 convolution (B32 C64 16×16) forward and forward + both gradients. Each of N rounds takes K samples of
 * every row from each side, the sides alternating (which goes first alternates too), so both see
 * the same machine load; a sample of the small ops is the mean of several calls. The figures are
 * the medians of the pooled samples, and the ratio of the medians; on a shared machine the
 * ratios are the figures to quote.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { createSampler, generateAsync, startSamplingReplicas } from '../src/diffusion/index.js';
import {
  add,
  cpuBackend,
  mean,
  mul,
  noGrad,
  randn,
  square,
  sub,
  tidy,
} from '../src/engine/index.js';
import { conv2dSpec } from '../src/engine/ops/conv.js';
import { AdamW } from '../src/nn/index.js';
import { loadModel, UNet2DModel, writeTextAtomic } from '../src/nn/models/index.js';
import { writeParityFile } from './parity-file.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL_DIR = join(ROOT, 'models', 'mnist-small', 'unet');
const SCHEDULER_CONFIG = join(ROOT, 'models', 'mnist-small', 'scheduler', 'scheduler_config.json');
const TORCH_SCRIPT = join(ROOT, 'bench', 'torch_cpu.py');

type RowId = 'train' | 'forward' | 'sample' | 'matmul' | 'conv-fwd' | 'conv-fwdbwd';

interface RowSpec {
  id: RowId;
  label: string;
  /** Calls per sample (a sample is their mean). */
  inner: number;
  /** Untimed calls before the first sample. */
  warm: number;
  /** FLOPs of one call, where the table shows GFLOP/s. */
  flop?: number;
  /** At most this many samples a round (the long rows). */
  maxPerRound?: number;
}

const ROWS: readonly RowSpec[] = [
  {
    id: 'train',
    label: 'mnist-small training step, batch 32 (fwd + bwd + AdamW)',
    inner: 1,
    warm: 1,
  },
  { id: 'forward', label: 'mnist-small forward, batch 64, no grad', inner: 1, warm: 1 },
  {
    id: 'sample',
    label: 'sampling 64 digits, 20 DPM-Solver++ steps (the demo)',
    inner: 1,
    warm: 1,
    maxPerRound: 1,
  },
  { id: 'matmul', label: 'matmul 512³', inner: 10, warm: 3, flop: 2 * 512 ** 3 },
  { id: 'conv-fwd', label: 'conv 3×3 B32 C64 16² forward', inner: 4, warm: 2 },
  { id: 'conv-fwdbwd', label: 'conv 3×3 B32 C64 16² forward + backward', inner: 2, warm: 2 },
];

interface Options {
  rounds: number;
  perRound: number;
  rows: readonly RowSpec[];
  json: string | null;
  python: string;
  torchThreads: number;
}

class UsageError extends Error {}

const USAGE =
  'usage: npm run bench:torch -- [--rounds N] [--per-round K] [--rows ' +
  `${ROWS.map((r) => r.id).join(',')}] [--json FILE] [--python PATH] [--torch-threads N]`;

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    rounds: 7,
    perRound: 3,
    rows: ROWS,
    json: null,
    python: '/usr/bin/python3',
    torchThreads: 2,
  };
  const count = (flag: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`${flag}: expected a positive integer, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--help' || flag === '-h') throw new UsageError(USAGE);
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) {
      throw new UsageError(`${flag}: missing value (${USAGE})`);
    }
    i++;
    if (flag === '--rounds') o.rounds = count(flag, value);
    else if (flag === '--per-round') o.perRound = count(flag, value);
    else if (flag === '--torch-threads') o.torchThreads = count(flag, value);
    else if (flag === '--json') o.json = value;
    else if (flag === '--python') o.python = value;
    else if (flag === '--rows') {
      const ids = value.split(',');
      const bad = ids.filter((id) => !ROWS.some((r) => r.id === id));
      if (bad.length > 0) {
        throw new UsageError(
          `--rows: unknown ${bad.join(', ')} (known: ${ROWS.map((r) => r.id).join(', ')})`,
        );
      }
      o.rows = ROWS.filter((r) => ids.includes(r.id));
    } else throw new UsageError(`unknown option ${flag} (${USAGE})`);
  }
  return o;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A reply of bench/torch_cpu.py: ok plus the command's fields, or the error it hit. */
type Reply = { ok: true; [k: string]: unknown } | { ok: false; error: string };

/** bench/torch_cpu.py --serve: one JSON request per line in, one JSON reply per line out. */
class TorchWorker {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #pending: ((line: string | null) => void)[] = [];
  #stderr = '';
  #closed = false;

  constructor(python: string, threads: number) {
    this.#proc = spawn(
      python,
      [TORCH_SCRIPT, '--serve', '--model', MODEL_DIR, '--threads', String(threads)],
      // OpenBLAS sizes its own thread pool; torch.set_num_threads does not reach it.
      { env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads) } },
    );
    this.#proc.stderr.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.#lines = createInterface({ input: this.#proc.stdout });
    this.#lines.on('line', (line) => this.#pending.shift()?.(line));
    this.#proc.on('close', () => {
      this.#closed = true;
      for (const p of this.#pending.splice(0)) p(null);
    });
    this.#proc.on('error', () => undefined); // reported as a closed pipe with stderr
  }

  /** The last line the process wrote on stderr (why it stopped). */
  get why(): string {
    const lines = this.#stderr.trim().split('\n');
    return lines[lines.length - 1] || 'no message';
  }

  #next(): Promise<string | null> {
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#pending.push(resolve));
  }

  /** Waits for the ready line (the model built and its weights loaded). */
  async ready(): Promise<void> {
    const line = await this.#next();
    if (line === null) {
      const hint = this.why.includes("No module named 'torch'")
        ? " (install Debian's: apt-get install -y python3-torch libopenblas0-pthread)"
        : '';
      throw new Error(`PyTorch side (bench/torch_cpu.py) did not start: ${this.why}${hint}`);
    }
  }

  async request(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    const answer = this.#next();
    this.#proc.stdin.write(JSON.stringify(req) + '\n');
    const line = await answer;
    if (line === null) throw new Error(`PyTorch side stopped: ${this.why}`);
    const reply = JSON.parse(line) as Reply;
    if (!reply.ok) throw new Error(`PyTorch side: ${reply.error}`);
    return reply;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const done = new Promise<void>((resolve) => this.#proc.on('close', () => resolve()));
    this.#proc.stdin.end(JSON.stringify({ cmd: 'quit' }) + '\n');
    await done;
  }
}

/** Sumi's side of every row: one call each. */
async function sumiWork(): Promise<{
  model: UNet2DModel;
  run: Record<RowId, () => void | Promise<void>>;
}> {
  const cpu = cpuBackend();
  const model = await loadModel(MODEL_DIR, { as: UNet2DModel, backend: cpu });
  const opt = new AdamW(model, { lr: 1e-4 });
  let seed = 0;
  const rand = (n: number, s: number): Float32Array =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + s) * 0.5);
  const m = 512;
  const mm = {
    batch: 1,
    m,
    n: m,
    k: m,
    transA: false,
    transB: false,
    aBatchStride: 0,
    bBatchStride: 0,
  };
  const [a, b] = [cpu.fromArray(rand(m * m, 1)), cpu.fromArray(rand(m * m, 2))];
  const cs = conv2dSpec([32, 64, 16, 16], [64, 64, 3, 3], { padding: 1 });
  const x = cpu.fromArray(rand(32 * 64 * 256, 3));
  const w = cpu.fromArray(rand(64 * 64 * 9, 4));
  const dy = cpu.fromArray(rand(32 * 64 * 256, 5));
  const scheduler = createSampler(
    'dpmpp-2m',
    JSON.parse(readFileSync(SCHEDULER_CONFIG, 'utf8')) as Record<string, unknown>,
  );
  const run: Record<RowId, () => void | Promise<void>> = {
    train: () =>
      tidy(() => {
        model.train();
        seed++;
        const x0 = randn([32, 1, 28, 28], { seed });
        const noise = randn([32, 1, 28, 28], { seed: seed + 1e6 });
        const t = Array.from({ length: 32 }, (_, i) => (i * 31 + seed) % 1000);
        const out = model.forward(add(mul(x0, 0.8), mul(noise, 0.6)), t);
        mean(square(sub(out, noise))).backward();
        opt.step();
        model.zeroGrad();
      }),
    forward: () =>
      noGrad(() =>
        tidy(() => {
          model.eval();
          model.forward(randn([64, 1, 28, 28], { seed: 7 }), 500);
        }),
      ),
    sample: async () => {
      model.eval();
      // Started (and waited for) and stopped within the sample, as `sumi sample` does: while a
      // replica runs, the GEMMs of this thread have no helper thread, which would slow every
      // other row.
      const replicas = await startSamplingReplicas(model, 2, 64);
      try {
        const x0 = await generateAsync(model, scheduler, {
          n: 64,
          seed: 0,
          numInferenceSteps: 20,
          replicas,
        });
        x0.dispose();
      } finally {
        await replicas?.close();
      }
    },
    matmul: () => cpu.free(cpu.matmul(a, b, mm)),
    'conv-fwd': () => cpu.free(cpu.conv2d(x, w, cs)),
    'conv-fwdbwd': () => {
      cpu.free(cpu.conv2d(x, w, cs));
      cpu.free(cpu.conv2dGradInput(dy, w, cs));
      cpu.free(cpu.conv2dGradWeight(x, dy, cs));
    },
  };
  return { model, run };
}

async function timeSumi(
  fn: () => void | Promise<void>,
  n: number,
  inner: number,
  warm: number,
): Promise<number[]> {
  for (let i = 0; i < warm; i++) await fn();
  const out: number[] = [];
  for (let s = 0; s < n; s++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) await fn();
    out.push((performance.now() - t0) / inner);
  }
  return out;
}

/** "2,189 ms", "14.5 ms", "0.93 ms": three significant figures, at least whole milliseconds. */
function fmtMs(ms: number): string {
  if (ms >= 100) return `${Math.round(ms).toLocaleString('en-US')} ms`;
  return `${ms.toPrecision(3)} ms`;
}

function fmtCell(ms: number, flop: number | undefined): string {
  return flop === undefined ? fmtMs(ms) : `${fmtMs(ms)} (${(flop / ms / 1e6).toFixed(0)} GFLOP/s)`;
}

/**
 * A warning when other work already used a core's worth of the machine before the run: under
 * contention PyTorch's OpenMP and OpenBLAS threads (which spin while they wait for each other)
 * slow down far more than Sumi, so the ratios then flatter Sumi.
 */
function loadWarning(load1: number, cores: number): string | null {
  if (load1 < 1) return null;
  return (
    `load average ${load1.toFixed(1)} on ${cores} cores before the run: other work shares ` +
    'the CPU, which slows PyTorch far more than Sumi; these ratios are not those of an idle machine'
  );
}

async function main(o: Options): Promise<void> {
  const loadStart = loadavg();
  if (!existsSync(o.python)) {
    throw new Error(
      `${o.python} not found: the PyTorch side needs Debian's python3 with python3-torch ` +
        '(apt-get install -y python3-torch libopenblas0-pthread), or name one with --python',
    );
  }
  const torch = new TorchWorker(o.python, o.torchThreads);
  try {
    await torch.ready();
    const info = await torch.request({ cmd: 'info' });
    const sumi = await sumiWork();
    // Let the gemm workers start before timing (they come up in the background).
    await new Promise((resolve) => setTimeout(resolve, 300));

    const dir = await mkdtemp(join(tmpdir(), 'sumi-bench-torch-'));
    let parity: Record<string, unknown>;
    try {
      const file = join(dir, 'parity.safetensors');
      await writeParityFile(sumi.model, file);
      parity = await torch.request({ cmd: 'check', file });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const sumiThreads = Math.min(
      8,
      Math.max(1, Math.floor(Number(process.env.SUMI_CPU_THREADS ?? availableParallelism())) || 1),
    );
    const samples = new Map(
      o.rows.map((r) => [r.id, { torch: [] as number[], sumi: [] as number[] }]),
    );
    for (let round = 0; round < o.rounds; round++) {
      process.stderr.write(`round ${round + 1}/${o.rounds}\n`);
      for (const r of o.rows) {
        const warm = round === 0 ? r.warm : 0;
        const perRound = Math.min(o.perRound, r.maxPerRound ?? o.perRound);
        const s = samples.get(r.id)!;
        const sides = [
          async () => {
            const reply = await torch.request({
              cmd: 'time',
              row: r.id,
              n: perRound,
              inner: r.inner,
              warm,
            });
            s.torch.push(...(reply.ms as number[]));
          },
          async () => {
            s.sumi.push(...(await timeSumi(sumi.run[r.id], perRound, r.inner, warm)));
          },
        ];
        if (round % 2 === 1) sides.reverse();
        for (const side of sides) await side();
      }
    }
    const loadAfter = loadavg();

    const rows = o.rows.map((r) => {
      const s = samples.get(r.id)!;
      const torchMs = median(s.torch);
      const sumiMs = median(s.sumi);
      return {
        id: r.id,
        label: r.label,
        torchMs,
        sumiMs,
        ratio: sumiMs / torchMs,
        flop: r.flop,
        samples: s,
      };
    });
    const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
    const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' ');
    const warning = loadWarning(loadStart[0]!, availableParallelism());
    const lines = [
      `# ${cpu}, ${availableParallelism()} cores; load average ${load(loadStart)} before, ${load(loadAfter)} after`,
      ...(warning === null ? [] : [`# warning: ${warning}`]),
      `# PyTorch ${String(info.torch)}, ${String(info.threads)} threads, BLAS ${String(info.blas)}; ` +
        `Sumi CPU backend, ${sumiThreads} threads`,
      `# parity (mnist-small, B4, relative L2 vs Sumi): output ${Number(parity.outRelL2).toExponential(1)}, ` +
        `gradients ${Number(parity.gradRelL2).toExponential(1)} (tolerance ${Number(parity.tolerance).toExponential(0)})`,
      `# pooled medians of ${o.rounds * o.perRound} samples per side (${o.rounds} alternating rounds of ${o.perRound})`,
      '',
      '| work | PyTorch CPU | Sumi CPU | Sumi / PyTorch |',
      '|---|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.label} | ${fmtCell(r.torchMs, r.flop)} | ${fmtCell(r.sumiMs, r.flop)} | ${r.ratio.toFixed(1)}× |`,
      ),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    if (o.json !== null) {
      const doc = {
        date: new Date().toISOString(),
        machine: { cpu, cores: availableParallelism(), loadBefore: loadStart, loadAfter },
        warning,
        torch: { version: info.torch, threads: info.threads, blas: info.blas },
        sumi: { backend: 'cpu', threads: sumiThreads },
        parity,
        rounds: o.rounds,
        perRound: o.perRound,
        rows: rows.map((r) => ({
          id: r.id,
          work: r.label,
          torchMs: r.torchMs,
          sumiMs: r.sumiMs,
          ratio: r.ratio,
          inner: o.rows.find((x) => x.id === r.id)!.inner,
          torchSamplesMs: r.samples.torch,
          sumiSamplesMs: r.samples.sumi,
        })),
      };
      await writeTextAtomic(o.json, JSON.stringify(doc, null, 2) + '\n');
    }
  } finally {
    await torch.close();
  }
}

let options: Options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  process.stderr.write(`bench:torch: ${e.message}\n`);
  process.exit(2);
}
try {
  await main(options);
  // The gemm worker threads keep the event loop alive.
  process.exit(0);
} catch (e) {
  process.stderr.write(`bench:torch: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
