/**
 * Kernel benchmarks of the WebGPU backend (never run as tests).
 *
 *   npm run bench [-- [--small] [--iters N] [--json out.json] [names...]]
 *
 * names: matmul, conv-fwd, conv-fwdbwd, groupnorm, attention (default: all). `--small` uses
 * shapes that finish in seconds on lavapipe (Mesa's CPU Vulkan driver). Each figure: warm-up,
 * then N iterations recorded back to back and timed until the GPU reports them done
 * (queue.onSubmittedWorkDone), so dispatch recording overlaps execution as in real use.
 */
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';

import type { Conv2dSpec, MatmulSpec, Storage } from '../src/engine/backend.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/engine/backends/webgpu/index.js';
import {
  groupNorm,
  randn,
  scaledDotProductAttention,
  sum,
  tidy,
  type Tensor,
} from '../src/engine/index.js';
import { conv2dSpec } from '../src/engine/ops/conv.js';

interface Result {
  name: string;
  shape: string;
  ms: number;
  /** GFLOP/s when the work has a flop count. */
  gflops?: number;
  iters: number;
}

interface Bench {
  name: string;
  run: (gpu: WebGpuBackend, small: boolean, iters: number) => Promise<Result[]>;
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

function result(name: string, shape: string, ms: number, flop: number | null, iters: number) {
  return { name, shape, ms, iters, ...(flop === null ? {} : { gflops: flop / (ms * 1e6) }) };
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
          const d = gpu.groupNormBackward(sx, sg, r.mean, r.rstd, dy, spec);
          for (const t of [r.y, r.mean, r.rstd, d.dx, d.dweight!, d.dbias!]) gpu.free(t);
        },
        iters,
      );
      gpu.free(dy);
      for (const t of [x, g, b]) t.dispose();
      return [
        result('groupNorm fwd (ops)', shape, fwd, null, iters),
        result('groupNorm fwd+bwd (ops)', shape, both, null, iters),
        result('groupNorm fwd (fused)', shape, fusedFwd, null, iters),
        result('groupNorm fwd+bwd (fused)', shape, fusedBoth, null, iters),
      ];
    },
  },
  {
    name: 'attention',
    async run(gpu, small, iters) {
      const [b, heads, l, d] = small ? [1, 4, 256, 64] : [8, 8, 1024, 64];
      const mk = (seed: number): Tensor => randn([b, heads, l, d], { seed, backend: gpu });
      const [q, k, v] = [mk(1), mk(2), mk(3)];
      const ms = await time(gpu, () => tidy(() => void scaledDotProductAttention(q, k, v)), iters);
      // matmul, fused softmax (scale folded in), matmul: what the op layer can do with FusedKernels.
      const batch = b * heads;
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
      const soft = { rows: batch * l, cols: l, scale: 1 / Math.sqrt(d) };
      const fused = await time(
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
      for (const t of [q, k, v]) t.dispose();
      const flop = 4 * b * heads * l * l * d;
      const shape = `B${b} H${heads} L${l} d${d}`;
      return [
        result('attention fwd (ops)', shape, ms, flop, iters),
        result('attention fwd (fused softmax)', shape, fused, flop, iters),
      ];
    },
  },
];

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
      console.log(
        `${r.name.padEnd(30)} ${r.shape.padEnd(30)} ${r.ms.toFixed(3).padStart(10)} ms ${perf}`,
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
