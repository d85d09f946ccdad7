/**
 * Benchmarks of the WebGPU backend (never run as tests).
 *
 *   npm run bench [-- [--small] [--iters N] [--json out.json] [names...]]
 *   npm run bench -- --profile [...]   (where a CPU training step goes: bench/profile.ts)
 *
 * names: matmul, conv-fwd, conv-fwdbwd, groupnorm, attention, ddpm-train, ddpm-sample (default:
 * all). `--small` uses shapes that finish on lavapipe (Mesa's CPU Vulkan driver): seconds for the
 * kernels, a few minutes for the ddpm-cifar10 model at batch 2 and 4. Each figure: warm-up, then
 * N iterations recorded back to back and timed until the GPU reports them done
 * (queue.onSubmittedWorkDone), so dispatch recording overlaps execution as in real use.
 */
import { performance } from 'node:perf_hooks';
import { readFileSync, writeFileSync } from 'node:fs';

import type { AttentionSpec, Conv2dSpec, MatmulSpec, Storage } from '../src/engine/backend.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/engine/backends/webgpu/index.js';
import {
  add,
  Generator,
  groupNorm,
  groupNormSilu,
  mean,
  mul,
  noGrad,
  randn,
  scaledDotProductAttention,
  silu,
  square,
  sub,
  sum,
  tidy,
  type Tensor,
} from '../src/engine/index.js';
import { conv2dSpec } from '../src/engine/ops/conv.js';
import { AdamW } from '../src/nn/index.js';
import { createModel, type UNet2DModel } from '../src/nn/models/index.js';
import { profileTrainingStep } from './profile.js';

interface Result {
  name: string;
  shape: string;
  ms: number;
  /** GFLOP/s when the work has a flop count. */
  gflops?: number;
  /** Images per second for the model benchmarks. */
  imgPerS?: number;
  iters: number;
}

interface Bench {
  name: string;
  run: (gpu: WebGpuBackend, small: boolean, iters: number) => Promise<Result[]>;
}

/** Images per second from a batch and milliseconds per batch. */
function imgPerS(batch: number, ms: number): number {
  return batch / (ms / 1000);
}

/** Times `iters` calls of `step` (each records GPU work) after `warm` untimed ones. */
async function time(gpu: WebGpuBackend, step: () => void, iters: number, warm = 2) {
  for (let i = 0; i < warm; i++) step();
  await gpu.sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) step();
  await gpu.sync();
  return (performance.now() - t0) / iters;
}

function randStorage(gpu: WebGpuBackend, n: number, seed: number): Storage {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) / 4294967296 - 0.5;
  }
  return gpu.fromArray(a);
}

function result(
  name: string,
  shape: string,
  ms: number,
  flop: number | null,
  iters: number,
  batch?: number,
): Result {
  return {
    name,
    shape,
    ms,
    iters,
    ...(flop === null ? {} : { gflops: flop / (ms * 1e6) }),
    ...(batch === undefined ? {} : { imgPerS: imgPerS(batch, ms) }),
  };
}

const benches: Bench[] = [
  {
    name: 'matmul',
    async run(gpu, small, iters) {
      const n = small ? 512 : 4096;
      const spec: MatmulSpec = {
        batch: 1,
        m: n,
        n,
        k: n,
        transA: false,
        transB: false,
        aBatchStride: 0,
        bBatchStride: 0,
      };
      const a = randStorage(gpu, n * n, 1);
      const b = randStorage(gpu, n * n, 2);
      const ms = await time(gpu, () => gpu.free(gpu.matmul(a, b, spec)), iters);
      gpu.free(a);
      gpu.free(b);
      return [result('matmul', `${n}×${n}×${n}`, ms, 2 * n ** 3, iters)];
    },
  },
  {
    name: 'conv-fwd',
    async run(gpu, small, iters) {
      const s = convShape(small);
      const x = randStorage(gpu, s.n * s.cIn * s.h * s.w, 3);
      const w = randStorage(gpu, s.cOut * s.cIn * 9, 4);
      const ms = await time(gpu, () => gpu.free(gpu.conv2d(x, w, s)), iters);
      gpu.free(x);
      gpu.free(w);
      return [result('conv 3×3 fwd', convName(s), ms, convFlop(s), iters)];
    },
  },
  {
    name: 'conv-fwdbwd',
    async run(gpu, small, iters) {
      const s = convShape(small);
      const x = randStorage(gpu, s.n * s.cIn * s.h * s.w, 5);
      const w = randStorage(gpu, s.cOut * s.cIn * 9, 6);
      const dy = randStorage(gpu, s.n * s.cOut * s.hOut * s.wOut, 7);
      const fwd = await time(gpu, () => gpu.free(gpu.conv2d(x, w, s)), iters);
      const dx = await time(gpu, () => gpu.free(gpu.conv2dGradInput(dy, w, s)), iters);
      const dw = await time(gpu, () => gpu.free(gpu.conv2dGradWeight(x, dy, s)), iters);
      for (const t of [x, w, dy]) gpu.free(t);
      const f = convFlop(s);
      return [
        result('conv 3×3 grad input', convName(s), dx, f, iters),
        result('conv 3×3 grad weight', convName(s), dw, f, iters),
        result('conv 3×3 fwd+bwd', convName(s), fwd + dx + dw, 3 * f, iters),
      ];
    },
  },
  {
    name: 'groupnorm',
    async run(gpu, small, iters) {
      const [n, c, h] = small ? [8, 32, 16] : [128, 128, 32];
      const x = randn([n, c, h, h], { seed: 1, backend: gpu });
      const g = randn([c], { seed: 2, backend: gpu });
      const b = randn([c], { seed: 3, backend: gpu });
      const shape = `B${n} C${c} ${h}×${h}, 32 groups`;
      const fwd = await time(gpu, () => tidy(() => void groupNorm(x, 32, g, b)), iters);
      x.requireGrad();
      const both = await time(
        gpu,
        () =>
          tidy(() => {
            sum(groupNorm(x, 32, g, b)).backward();
            x.zeroGrad();
          }),
        iters,
      );
      // The fused kernels (FusedKernels in backend.ts), called on the backend directly.
      const spec = { n, channels: c, groups: 32, spatial: h * h, eps: 1e-5 };
      const [sx, sg, sb] = [x.storage, g.storage, b.storage];
      const dy = randStorage(gpu, n * c * h * h, 9);
      const fusedFwd = await time(
        gpu,
        () => {
          const r = gpu.groupNorm(sx, sg, sb, spec);
          for (const t of [r.y, r.mean, r.rstd]) gpu.free(t);
        },
        iters,
      );
      const fusedBoth = await time(
        gpu,
        () => {
          const r = gpu.groupNorm(sx, sg, sb, spec);
          const d = gpu.groupNormBackward(sx, sg, sb, r.mean, r.rstd, dy, spec);
          for (const t of [r.y, r.mean, r.rstd, d.dx, d.dweight!, d.dbias!]) gpu.free(t);
        },
        iters,
      );
      gpu.free(dy);
      // Group norm then SiLU, as two fused kernels plus the element-wise SiLU, and as one kernel.
      const pairOps = await time(
        gpu,
        () =>
          tidy(() => {
            sum(silu(groupNorm(x, 32, g, b))).backward();
            x.zeroGrad();
          }),
        iters,
      );
      const pairFused = await time(
        gpu,
        () =>
          tidy(() => {
            sum(groupNormSilu(x, 32, g, b)).backward();
            x.zeroGrad();
          }),
        iters,
      );
      for (const t of [x, g, b]) t.dispose();
      return [
        result('groupNorm fwd (ops)', shape, fwd, null, iters),
        result('groupNorm fwd+bwd (ops)', shape, both, null, iters),
        result('groupNorm fwd (fused)', shape, fusedFwd, null, iters),
        result('groupNorm fwd+bwd (fused)', shape, fusedBoth, null, iters),
        result('groupNorm→silu fwd+bwd (2 ops)', shape, pairOps, null, iters),
        result('groupNormSilu fwd+bwd (fused)', shape, pairFused, null, iters),
      ];
    },
  },
  {
    name: 'attention',
    async run(gpu, small, iters) {
      const [b, heads, l, d] = small ? [1, 4, 256, 64] : [8, 8, 1024, 64];
      const mk = (seed: number): Tensor => randn([b, heads, l, d], { seed, backend: gpu });
      const [q, k, v] = [mk(1), mk(2), mk(3)];
      const batch = b * heads;
      const spec: AttentionSpec = { batch, lq: l, lk: l, d, dv: d, scale: 1 / Math.sqrt(d) };
      const fused = await time(
        gpu,
        () => {
          const r = gpu.attention(q.storage, k.storage, v.storage, spec);
          gpu.free(r.out);
          gpu.free(r.logsumexp);
        },
        iters,
      );
      const dOut = randStorage(gpu, batch * l * d, 4);
      const fusedBoth = await time(
        gpu,
        () => {
          const r = gpu.attention(q.storage, k.storage, v.storage, spec);
          const g = gpu.attentionBackward(
            q.storage,
            k.storage,
            v.storage,
            r.out,
            r.logsumexp,
            dOut,
            spec,
          );
          for (const t of [r.out, r.logsumexp, g.dq, g.dk, g.dv]) gpu.free(t);
        },
        iters,
      );
      gpu.free(dOut);
      // The composite the fused kernel replaces: matmul, fused softmax (scale folded in), matmul.
      const mm = (n: number, k2: number, transB: boolean): MatmulSpec => ({
        batch,
        m: l,
        n,
        k: k2,
        transA: false,
        transB,
        aBatchStride: l * k2,
        bBatchStride: n * k2,
      });
      const soft = { rows: batch * l, cols: l, scale: spec.scale };
      const unfused = await time(
        gpu,
        () => {
          const s = gpu.matmul(q.storage, k.storage, mm(l, d, true));
          const p = gpu.softmax(s, soft);
          gpu.free(s);
          gpu.free(gpu.matmul(p, v.storage, mm(d, l, false)));
          gpu.free(p);
        },
        iters,
      );
      // The op with autograd (takes the fused kernels).
      for (const t of [q, k, v]) t.requireGrad();
      const op = await time(
        gpu,
        () =>
          tidy(() => {
            sum(scaledDotProductAttention(q, k, v)).backward();
            for (const t of [q, k, v]) t.zeroGrad();
          }),
        iters,
      );
      for (const t of [q, k, v]) t.dispose();
      // FLOPs as FlashAttention counts them: 4·L²·d forward, 2.5× that backward.
      const flop = 4 * batch * l * l * d;
      const shape = `B${b} H${heads} L${l} d${d}`;
      return [
        result('attention fwd (fused kernel)', shape, fused, flop, iters),
        result('attention fwd (mm+softmax+mm)', shape, unfused, flop, iters),
        result('attention fwd+bwd (fused)', shape, fusedBoth, 3.5 * flop, iters),
        result('attention fwd+bwd (op, autograd)', shape, op, 3.5 * flop, iters),
      ];
    },
  },
  {
    name: 'ddpm-train',
    async run(gpu, small, iters) {
      const batch = small ? 2 : 128;
      const model = await ddpmModel(gpu);
      model.train();
      const opt = new AdamW(model, { lr: 1e-4 });
      let seed = 0;
      const step = () =>
        tidy(() => {
          seed++;
          const x0 = randn([batch, 3, 32, 32], { seed, backend: gpu });
          const noise = randn([batch, 3, 32, 32], { seed: seed + 1e6, backend: gpu });
          const t = Array.from({ length: batch }, (_, i) => (seed * 37 + i * 101) % 1000);
          // The noise schedule does not change the work; fixed coefficients stand in for it.
          const xt = add(mul(x0, 0.8), mul(noise, 0.6));
          const loss = mean(square(sub(model.forward(xt, t), noise)));
          loss.backward();
          opt.step();
          model.zeroGrad();
        });
      const n = small ? 1 : iters;
      const ms = await time(gpu, step, n, small ? 1 : 2);
      opt.dispose();
      disposeModel(model);
      const shape = `ddpm-cifar10 B${batch} 32×32`;
      return [result('ddpm train step (AdamW)', shape, ms, 3 * DDPM_GFLOP * 1e9 * batch, n, batch)];
    },
  },
  {
    name: 'ddpm-sample',
    async run(gpu, small, iters) {
      const batch = small ? 4 : 256;
      const model = (await ddpmModel(gpu)).eval();
      let seed = 0;
      const step = () =>
        noGrad(() =>
          tidy(() => {
            seed++;
            const x = randn([batch, 3, 32, 32], { seed, backend: gpu });
            model.forward(x, 500);
          }),
        );
      const n = small ? 2 : iters;
      const ms = await time(gpu, step, n, small ? 1 : 2);
      disposeModel(model);
      const shape = `ddpm-cifar10 B${batch} 32×32`;
      return [result('ddpm forward (sampling)', shape, ms, DDPM_GFLOP * 1e9 * batch, n, batch)];
    },
  },
];

/** Forward GFLOP per 32×32 image of the ddpm-cifar10 U-Net (DESIGN.md); training ≈ 3×. */
const DDPM_GFLOP = 12.44;

/** The ddpm-cifar10 preset's UNet2DModel, randomly initialised, on the GPU. */
async function ddpmModel(gpu: WebGpuBackend): Promise<UNet2DModel> {
  const url = new URL('../presets/ddpm-cifar10/config.json', import.meta.url);
  const config = JSON.parse(readFileSync(url, 'utf8')) as Record<string, unknown>;
  const model = createModel(config, { generator: new Generator(0) }) as UNet2DModel;
  await model.to({ backend: gpu });
  return model;
}

function disposeModel(model: UNet2DModel): void {
  for (const p of model.parameters()) {
    p.grad?.dispose();
    p.dispose();
  }
}

function convShape(small: boolean): Conv2dSpec {
  const [n, c, h] = small ? [8, 32, 16] : [128, 128, 32];
  return conv2dSpec([n, c, h, h], [c, c, 3, 3], { padding: 1 });
}

function convName(s: Conv2dSpec): string {
  return `B${s.n} C${s.cIn}→${s.cOut} ${s.h}×${s.w}`;
}

function convFlop(s: Conv2dSpec): number {
  return 2 * s.n * s.cOut * s.hOut * s.wOut * (s.cIn / s.groups) * s.kh * s.kw;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--profile')) {
    await profileTrainingStep(args);
    return;
  }
  const small = args.includes('--small');
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const iters = Number(opt('--iters') ?? (small ? 5 : 20));
  const json = opt('--json');
  const names = args.filter(
    (a, i) => !a.startsWith('--') && !args[i - 1]?.match(/^--(iters|json)$/),
  );
  const unknown = names.filter((n) => !benches.some((b) => b.name === n));
  if (unknown.length > 0) {
    throw new Error(
      `unknown bench ${unknown.join(', ')}; known: ${benches.map((b) => b.name).join(', ')}`,
    );
  }
  const gpu = await createWebGpuBackend();
  if (gpu === null) throw new Error('bench: no WebGPU adapter');
  console.log(`# ${gpu.adapterName} (subgroups ${gpu.subgroups}); ${new Date().toISOString()}`);
  console.log(`# ${small ? 'small' : 'full'} shapes, ${iters} timed iterations each`);
  const results: Result[] = [];
  for (const b of benches) {
    if (names.length > 0 && !names.includes(b.name)) continue;
    for (const r of await b.run(gpu, small, iters)) {
      results.push(r);
      const perf = r.gflops === undefined ? '' : `${r.gflops.toFixed(1).padStart(10)} GFLOP/s`;
      const rate = r.imgPerS === undefined ? '' : `${r.imgPerS.toFixed(2).padStart(10)} img/s`;
      console.log(
        `${r.name.padEnd(34)} ${r.shape.padEnd(28)} ${r.ms.toFixed(3).padStart(10)} ms ${perf}${rate}`,
      );
    }
  }
  if (json !== undefined) {
    writeFileSync(
      json,
      JSON.stringify({ adapter: gpu.adapterName, small, iters, results }, null, 2),
    );
  }
}

await main();
