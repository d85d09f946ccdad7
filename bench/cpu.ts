/**
 * Benchmarks of the CPU backend (never run as tests), float32.
 *
 *   npm run bench:cpu [-- [--iters N] [--only NAME[,NAME…]] [--rounds R]]
 *
 * Runs each configuration in its own process, since the kernels are chosen once per process:
 * `js` (SUMI_CPU_SIMD=0: the plain TypeScript gemm, f64 accumulation), `simd1` (the WebAssembly
 * SIMD gemm on one thread) and `simd` (SIMD with one worker thread per core), and `simd1-fma`,
 * `simd-fma`, the same with the gemm's fused multiply-add build (SUMI_CPU_FMA=1, relaxed SIMD;
 * the others set SUMI_CPU_FMA=0), and `simd-direct`, `simd` with the stride-1 3×3 convolutions as
 * direct products instead of Winograd (SUMI_CPU_WINOGRAD=0). With --rounds R the selected
 * configurations run R times in turn, and a summary gives each figure's median time and, for X-fma
 * beside X, the median of the per-round ratios X-fma / X (paired runs, so the machine's load
 * cancels out). Figures: matmul,
 * a 3×3 convolution forward and forward+backward, GELU forward+backward (the JavaScript loops
 * under `js`, the WebAssembly kernels otherwise), and the mnist-small U-Net's training step
 * (batch 32, AdamW) and forward pass (batch 64, as in sampling), median of N.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

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
import { simdRuntime } from '../src/engine/backends/cpu/simd-gemm.js';
import { conv2dSpec } from '../src/engine/ops/conv.js';
import { AdamW } from '../src/nn/index.js';
import { createModel, type UNet2DModel } from '../src/nn/models/index.js';
import { loadPreset } from '../src/cli/presets.js';

const CORES = String(Math.min(8, availableParallelism()));
const CONFIGS: Record<string, Record<string, string>> = {
  js: { SUMI_CPU_SIMD: '0', SUMI_CPU_THREADS: '1' },
  simd1: { SUMI_CPU_SIMD: '1', SUMI_CPU_THREADS: '1', SUMI_CPU_FMA: '0' },
  simd: { SUMI_CPU_SIMD: '1', SUMI_CPU_THREADS: CORES, SUMI_CPU_FMA: '0' },
  'simd1-fma': { SUMI_CPU_SIMD: '1', SUMI_CPU_THREADS: '1', SUMI_CPU_FMA: '1' },
  'simd-fma': { SUMI_CPU_SIMD: '1', SUMI_CPU_THREADS: CORES, SUMI_CPU_FMA: '1' },
  'simd-direct': {
    SUMI_CPU_SIMD: '1',
    SUMI_CPU_THREADS: CORES,
    SUMI_CPU_FMA: '0',
    SUMI_CPU_WINOGRAD: '0',
  },
};
/** Run when --only is not given (the fused builds are asked for by name). */
const DEFAULT_CONFIGS = ['js', 'simd1', 'simd'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeIt(fn: () => void, iters: number): number {
  fn();
  const ms: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    fn();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

async function child(iters: number): Promise<void> {
  // Let the gemm workers start before timing.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const cpu = cpuBackend();
  const rows: string[] = [`gemm build: ${simdRuntime()?.kernelKind ?? 'none (JS gemm)'}`];
  const rand = (n: number, seed: number): Float32Array =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);

  const m = 512;
  const a = cpu.fromArray(rand(m * m, 1));
  const b = cpu.fromArray(rand(m * m, 2));
  const spec = {
    batch: 1,
    m,
    n: m,
    k: m,
    transA: false,
    transB: false,
    aBatchStride: 0,
    bBatchStride: 0,
  };
  const mmMs = timeIt(() => cpu.matmul(a, b, spec), iters);
  rows.push(
    `matmul 512³: ${((2 * m ** 3) / mmMs / 1e6).toFixed(1)} GFLOP/s (${mmMs.toFixed(1)} ms)`,
  );

  const cs = conv2dSpec([32, 64, 16, 16], [64, 64, 3, 3], { padding: 1 });
  const x = cpu.fromArray(rand(32 * 64 * 256, 3));
  const w = cpu.fromArray(rand(64 * 64 * 9, 4));
  const flops = 2 * 32 * 64 * 256 * 64 * 9;
  const fwd = timeIt(() => cpu.conv2d(x, w, cs), iters);
  const all = timeIt(() => {
    const y = cpu.conv2d(x, w, cs);
    cpu.conv2dGradInput(y, w, cs);
    cpu.conv2dGradWeight(x, y, cs);
  }, iters);
  rows.push(
    `conv 3×3 B32 C64 16², forward: ${(flops / fwd / 1e6).toFixed(1)} GFLOP/s (${fwd.toFixed(1)} ms)`,
  );
  rows.push(
    `conv 3×3 B32 C64 16², fwd+bwd: ${((3 * flops) / all / 1e6).toFixed(1)} GFLOP/s (${all.toFixed(1)} ms)`,
  );

  // GELU over the activations of a GEGLU feed-forward (batch 32, 7×7 tokens, width 4·64).
  const ng = 32 * 49 * 256;
  const gx = cpu.fromArray(rand(ng, 5).map((v) => v * 8));
  const gdy = cpu.fromArray(rand(ng, 6));
  const geluMs = timeIt(() => {
    cpu.unary('gelu', gx);
    cpu.geluBackward!(gx, gdy);
  }, iters);
  rows.push(
    `gelu fwd+bwd, ${ng} floats: ${((geluMs * 1e6) / ng).toFixed(1)} ns/float (${geluMs.toFixed(1)} ms)`,
  );

  const preset = loadPreset('mnist-small');
  const model = createModel(preset.model) as UNet2DModel;
  model.train();
  const opt = new AdamW(model, { lr: 1e-4 });
  let seed = 0;
  const trainMs = timeIt(
    () =>
      tidy(() => {
        seed++;
        const x0 = randn([32, 1, 28, 28], { seed });
        const noise = randn([32, 1, 28, 28], { seed: seed + 1e6 });
        const t = Array.from({ length: 32 }, (_, i) => (i * 31 + seed) % 1000);
        const loss = mean(square(sub(model.forward(add(mul(x0, 0.8), mul(noise, 0.6)), t), noise)));
        loss.backward();
        opt.step();
        model.zeroGrad();
      }),
    Math.max(2, Math.ceil(iters / 2)),
  );
  rows.push(
    `mnist-small train step, batch 32: ${trainMs.toFixed(0)} ms, ${(32 / (trainMs / 1000)).toFixed(1)} img/s`,
  );
  const fwdMs = timeIt(
    () =>
      noGrad(() =>
        tidy(() => {
          model.forward(randn([64, 1, 28, 28], { seed: 7 }), 500);
        }),
      ),
    Math.max(2, Math.ceil(iters / 2)),
  );
  rows.push(
    `mnist-small forward, batch 64: ${fwdMs.toFixed(0)} ms, ${(64 / (fwdMs / 1000)).toFixed(1)} img/s`,
  );
  process.stdout.write(rows.join('\n') + '\n');
}

/** The milliseconds of each figure of a child's output (`label: … N ms…`). */
function parseTimes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(.+?): .*?([\d.]+) ms/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

function summary(names: string[], times: Map<string, number>[][]): string {
  const lines = [
    '## summary: median and fastest ms over rounds; X-fma / X: median of the per-round ratios',
  ];
  const labels = [...new Set(times.flatMap((r) => r.flatMap((t) => [...t.keys()])))];
  for (const label of labels) {
    const cells = names.map((name, c) => {
      const ms = times.flatMap((r) => r[c]?.get(label) ?? []);
      return ms.length > 0
        ? `${name} ${median(ms).toFixed(1)} (min ${Math.min(...ms).toFixed(1)})`
        : `${name} -`;
    });
    for (const [c, name] of names.entries()) {
      const base = names.indexOf(name.replace(/-fma$/, ''));
      if (!name.endsWith('-fma') || base < 0) continue;
      const ratios = times.flatMap((r) => {
        const f = r[c]?.get(label);
        const p = r[base]?.get(label);
        return f !== undefined && p !== undefined ? [f / p] : [];
      });
      if (ratios.length > 0) {
        cells.push(`${name}/${names[base]} ${median(ratios).toFixed(3)} (n=${ratios.length})`);
      }
    }
    lines.push(`${label}: ${cells.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const option = (flag: string): string | undefined =>
    argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined;
  const iters = Number(option('--iters') ?? 5) || 5;
  if (argv.includes('--child')) return child(iters);
  const names = option('--only')?.split(',') ?? DEFAULT_CONFIGS;
  const unknown = names.filter((n) => !(n in CONFIGS));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench:cpu: unknown configuration ${unknown.join(', ')} (known: ${Object.keys(CONFIGS).join(', ')})\n`,
    );
    process.exit(2);
  }
  const rounds = Number(option('--rounds') ?? 1);
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write(
      `bench:cpu: --rounds must be a positive integer, not ${option('--rounds')}\n`,
    );
    process.exit(2);
  }
  const script = fileURLToPath(import.meta.url);
  const times: Map<string, number>[][] = [];
  for (let round = 0; round < rounds; round++) {
    const row: Map<string, number>[] = [];
    for (const name of names) {
      const env = CONFIGS[name]!;
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', script, '--child', '--iters', String(iters)],
        {
          env: { ...process.env, ...env },
          encoding: 'utf8',
        },
      );
      const head = rounds > 1 ? `## ${name}, round ${round + 1}` : `## ${name}`;
      process.stdout.write(`${head} (${JSON.stringify(env)})\n${r.stdout}${r.stderr}\n`);
      row.push(parseTimes(r.stdout));
    }
    times.push(row);
  }
  if (rounds > 1) process.stdout.write(summary(names, times));
}

await main();
