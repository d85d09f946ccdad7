/**
 * Benchmarks of the CPU backend (never run as tests), float32.
 *
 *   npm run bench:cpu [-- [--iters N] [--only js|simd1|simd]]
 *
 * Runs each configuration in its own process, since the kernels are chosen once per process:
 * `js` (SUMI_CPU_SIMD=0: the plain TypeScript gemm, f64 accumulation), `simd1` (the WebAssembly
 * SIMD gemm on one thread) and `simd` (SIMD with one worker thread per core). Figures: matmul,
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
import { conv2dSpec } from '../src/engine/ops/conv.js';
import { AdamW } from '../src/nn/index.js';
import { createModel, type UNet2DModel } from '../src/nn/models/index.js';
import { loadPreset } from '../src/cli/presets.js';

const CONFIGS = {
  js: { SUMI_CPU_SIMD: '0', SUMI_CPU_THREADS: '1' },
  simd1: { SUMI_CPU_SIMD: '1', SUMI_CPU_THREADS: '1' },
  simd: { SUMI_CPU_SIMD: '1', SUMI_CPU_THREADS: String(Math.min(8, availableParallelism())) },
} as const;

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
  const rows: string[] = [];
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

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const iters = Number(argv[argv.indexOf('--iters') + 1] ?? 5) || 5;
  if (argv.includes('--child')) return child(iters);
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
  const script = fileURLToPath(import.meta.url);
  for (const [name, env] of Object.entries(CONFIGS)) {
    if (only !== undefined && only !== name) continue;
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', script, '--child', '--iters', String(iters)],
      {
        env: { ...process.env, ...env },
        encoding: 'utf8',
      },
    );
    process.stdout.write(`## ${name} (${JSON.stringify(env)})\n${r.stdout}${r.stderr}\n`);
  }
}

await main();
