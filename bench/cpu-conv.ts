/**
 * The CPU backend's stride-1 3×3 float32 convolutions, Winograd against the direct product
 * (setCpuWinograd), alternated in one process so that the machine's load falls on both alike
 * (never run as a test).
 *
 *   npx tsx bench/cpu-conv.ts [--rounds R] [--iters N] [--shape B,C,H,W] [--model]
 *
 * Each round times N calls of each pass (forward, input gradient, weight gradient, and all three)
 * with Winograd off, then on; prints the min and median per call over all rounds of the wall time
 * and of the process's CPU time (every thread's; on a loaded machine the steadier of the two).
 * With --model the passes are bench/cpu.ts's mnist-small training step (batch 32, AdamW) and
 * forward (batch 64) instead.
 */
import { performance } from 'node:perf_hooks';

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
import { setCpuWinograd } from '../src/engine/backends/cpu/winograd.js';
import { conv2dSpec } from '../src/engine/ops/conv.js';
import { loadPreset } from '../src/cli/presets.js';
import { AdamW } from '../src/nn/index.js';
import { createModel, type UNet2DModel } from '../src/nn/models/index.js';

const argv = process.argv.slice(2);
const option = (flag: string, fallback: string): string =>
  argv.includes(flag) ? argv[argv.indexOf(flag) + 1]! : fallback;
const rounds = Number(option('--rounds', '5'));
const iters = Number(option('--iters', '3'));
const [B, C, H, W] = option('--shape', '32,64,16,16').split(',').map(Number) as [
  number,
  number,
  number,
  number,
];

await new Promise((resolve) => setTimeout(resolve, 500)); // the gemm workers start
const cpu = cpuBackend();
const rand = (n: number, seed: number): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
const spec = conv2dSpec([B, C, H, W], [C, C, 3, 3], { padding: 1 });
const x = cpu.fromArray(rand(B * C * H * W, 3));
const w = cpu.fromArray(rand(C * C * 9, 4));
const dy = cpu.fromArray(rand(B * C * spec.hOut * spec.wOut, 5));
function convPasses(): Record<string, () => void> {
  return {
    forward: () => cpu.free(cpu.conv2d(x, w, spec)),
    'grad input': () => cpu.free(cpu.conv2dGradInput(dy, w, spec)),
    'grad weight': () => cpu.free(cpu.conv2dGradWeight(x, dy, spec)),
    'fwd+bwd': () => {
      cpu.free(cpu.conv2d(x, w, spec));
      cpu.free(cpu.conv2dGradInput(dy, w, spec));
      cpu.free(cpu.conv2dGradWeight(x, dy, spec));
    },
  };
}

/** bench/cpu.ts's mnist-small figures: a training step at batch 32 and a forward at batch 64. */
function modelPasses(): Record<string, () => void> {
  const model = createModel(loadPreset('mnist-small').model) as UNet2DModel;
  model.train();
  const opt = new AdamW(model, { lr: 1e-4 });
  let seed = 0;
  return {
    'mnist-small train step, batch 32': () =>
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
    'mnist-small forward, batch 64': () =>
      noGrad(() =>
        tidy(() => {
          model.forward(randn([64, 1, 28, 28], { seed: 7 }), 500);
        }),
      ),
  };
}

const passes = argv.includes('--model') ? modelPasses() : convPasses();
const times = new Map<string, number[]>();
for (let round = 0; round < rounds; round++) {
  for (const winograd of [false, true]) {
    setCpuWinograd(winograd);
    for (const [name, fn] of Object.entries(passes)) {
      fn();
      const key = `${name} ${winograd ? 'winograd' : 'direct'}`;
      for (let i = 0; i < iters; i++) {
        const t = performance.now();
        const c = process.cpuUsage();
        fn();
        const { user, system } = process.cpuUsage(c);
        times.set(key, [...(times.get(key) ?? []), performance.now() - t]);
        times.set(`${key} cpu`, [...(times.get(`${key} cpu`) ?? []), (user + system) / 1000]);
      }
    }
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
process.stdout.write(
  `${argv.includes('--model') ? 'mnist-small' : `conv 3×3 B${B} C${C} ${H}×${W}`}, ${rounds} rounds × ${iters}, ms per call\n`,
);
for (const name of Object.keys(passes)) {
  for (const clock of ['', ' cpu']) {
    const d = times.get(`${name} direct${clock}`)!;
    const v = times.get(`${name} winograd${clock}`)!;
    process.stdout.write(
      `${name}${clock ? ' (cpu time)' : ' (wall)'}: direct min ${Math.min(...d).toFixed(2)} ` +
        `median ${median(d).toFixed(2)}, winograd min ${Math.min(...v).toFixed(2)} ` +
        `median ${median(v).toFixed(2)}, median ratio ${(median(d) / median(v)).toFixed(2)}×\n`,
    );
  }
}
