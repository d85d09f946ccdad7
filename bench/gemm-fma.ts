/**
 * The gemm micro-kernel alone, plain build against fused multiply-add build (relaxed SIMD), in
 * one process, alternating: a packed M×N×K product (default 512³) on one thread, in Node (V8's
 * relaxed SIMD flag turned on here) and, where Chromium is installed, in headless Chromium.
 *
 *   npx tsx bench/gemm-fma.ts [--size N] [--pairs P] [--no-browser]
 *
 * Prints per runtime whether relaxed SIMD was on without being asked, whether relaxed_madd
 * rounds once (fused) on this CPU, the fastest and median times of a product with each build
 * (each sample the mean of as many products as take 20 ms), and the median of the per-pair ratios
 * fused / plain (the two samples of a pair run back to back, so load mostly cancels out).
 */
import { chromium } from 'playwright-core';

import { runtimeRelaxedSimd } from '../src/engine/backends/cpu/relaxed-simd.js';
import { GEMM_WASM, GEMM_WASM_FMA } from '../src/engine/backends/cpu/wasm/gemm-wasm.js';
import { CHROMIUM, chromiumMissing } from '../web/harness.js';

interface KernelReport {
  relaxedByDefault: boolean;
  fuses: boolean;
  plain: { min: number; median: number };
  fma: { min: number; median: number };
  ratio: number;
}

/**
 * Runs in Node or, serialised, in a page: no imports, only WebAssembly, atob and performance.
 * `relaxedByDefault` is measured by the caller before relaxed SIMD is turned on.
 */
function kernelBench(plainB64: string, fmaB64: string, size: number, pairs: number) {
  const bytes = (b64: string): Uint8Array => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const memory = new WebAssembly.Memory({ initial: 16 });
  type Gemm = (...args: number[]) => void;
  const gemmOf = (b64: string): Gemm =>
    new WebAssembly.Instance(new WebAssembly.Module(bytes(b64)), { env: { memory } }).exports[
      'gemm'
    ] as Gemm;
  const kernels = { plain: gemmOf(plainB64), fma: gemmOf(fmaB64) };
  /** Lays out packed A [mp][k][4], B [np][k][8], C, and the address tables (floats). */
  const layout = (m: number, n: number, k: number) => {
    const mp = Math.ceil(m / 4);
    const np = Math.ceil(n / 8);
    const a = 0;
    const b = a + mp * 4 * k;
    const c = b + np * 8 * k;
    const aTable = c + mp * 4 * np * 8;
    const bTable = aTable + mp * 4;
    const end = bTable + k;
    if (memory.buffer.byteLength < end * 4) {
      memory.grow(Math.ceil((end * 4 - memory.buffer.byteLength) / 65536));
    }
    const f = new Float32Array(memory.buffer);
    const ints = new Int32Array(memory.buffer);
    for (let i = 0; i < mp * 4; i++) ints[aTable + i] = (a + (i >> 2) * 4 * k + (i & 3)) * 4;
    for (let p = 0; p < k; p++) ints[bTable + p] = (b + p * 8) * 4;
    const run = (g: Gemm): void =>
      g(aTable * 4, 16, bTable * 4, k * 32, c * 4, mp, 0, np, k, np * 8, 0);
    return { f, a, b, c, run };
  };
  // Fused or not: C = (−(1 + 2⁻¹¹))·1 + (1 + 2⁻¹²)², whose product rounds to 1 + 2⁻¹¹, so two
  // roundings give 0 and one gives 2⁻²⁴.
  const probe = layout(1, 1, 2);
  const u = 1 + 2 ** -12;
  probe.f.fill(0, 0, probe.c + 32);
  probe.f[probe.a] = -(1 + 2 ** -11);
  probe.f[probe.a + 4] = u;
  probe.f[probe.b] = 1;
  probe.f[probe.b + 8] = u;
  probe.run(kernels.fma);
  const fuses = probe.f[probe.c] === 2 ** -24;

  const big = layout(size, size, size);
  for (let i = big.a; i < big.c; i++) big.f[i] = Math.sin(i) * 0.5;
  const ms = { plain: [] as number[], fma: [] as number[] };
  const ratios: number[] = [];
  // Each sample repeats the product for ≥ 20 ms: browsers coarsen performance.now() (0.1 ms).
  big.run(kernels.plain);
  big.run(kernels.fma);
  let reps = 0;
  for (const t0 = performance.now(); performance.now() - t0 < 20; reps++) big.run(kernels.plain);
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? (['plain', 'fma'] as const) : (['fma', 'plain'] as const);
    const t: Record<string, number> = {};
    for (const name of order) {
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) big.run(kernels[name]);
      t[name] = (performance.now() - t0) / reps;
      ms[name].push(t[name]);
    }
    ratios.push(t['fma']! / t['plain']!);
  }
  const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  const stats = (xs: number[]) => ({ min: Math.min(...xs), median: med(xs) });
  return { fuses, plain: stats(ms.plain), fma: stats(ms.fma), ratio: med(ratios) };
}

function report(where: string, r: KernelReport, size: number, pairs: number): string {
  const gflops = (t: number): string => ((2 * size ** 3) / t / 1e6).toFixed(1);
  return [
    `## ${where}: ${size}³ packed, one thread, ${pairs} pairs`,
    `relaxed SIMD without asking: ${r.relaxedByDefault}; relaxed_madd fused: ${r.fuses}`,
    `plain: min ${r.plain.min.toFixed(2)} ms (${gflops(r.plain.min)} GFLOP/s), median ${r.plain.median.toFixed(2)} ms`,
    `fma:   min ${r.fma.min.toFixed(2)} ms (${gflops(r.fma.min)} GFLOP/s), median ${r.fma.median.toFixed(2)} ms`,
    `fma / plain, median of per-pair ratios: ${r.ratio.toFixed(3)}`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const option = (flag: string, fallback: number): number => {
    if (!argv.includes(flag)) return fallback;
    const v = Number(argv[argv.indexOf(flag) + 1]);
    if (!Number.isInteger(v) || v < 1) {
      process.stderr.write(`bench/gemm-fma: ${flag} must be a positive integer\n`);
      process.exit(2);
    }
    return v;
  };
  const size = option('--size', 512);
  const pairs = option('--pairs', 60);

  const relaxedByDefault = runtimeRelaxedSimd.available();
  if (!relaxedByDefault) runtimeRelaxedSimd.enable();
  if (!runtimeRelaxedSimd.available()) {
    process.stdout.write('## node: relaxed SIMD cannot be turned on in this runtime\n');
  } else {
    const r = kernelBench(GEMM_WASM, GEMM_WASM_FMA, size, pairs);
    process.stdout.write(
      report(`node ${process.version}`, { ...r, relaxedByDefault }, size, pairs),
    );
  }

  if (argv.includes('--no-browser')) return;
  const missing = chromiumMissing();
  if (missing !== null) {
    process.stdout.write(`## chromium: skipped (${missing})\n`);
    return;
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const version = browser.version();
    const relaxed = await page.evaluate(
      (b64) => WebAssembly.validate(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))),
      GEMM_WASM_FMA,
    );
    if (!relaxed) {
      process.stdout.write(`## chromium ${version}: relaxed SIMD unavailable\n`);
      return;
    }
    // The function's source, called in the page; tsx may wrap inner functions in
    // __name(fn, 'name') calls, for which an identity stands in.
    const args = [GEMM_WASM, GEMM_WASM_FMA, size, pairs].map((a) => JSON.stringify(a)).join(', ');
    const expression = `((__name) => (${kernelBench.toString()}))((g) => g)(${args})`;
    const r = await page.evaluate<ReturnType<typeof kernelBench>>(expression);
    process.stdout.write(
      report(`chromium ${version}`, { ...r, relaxedByDefault: relaxed }, size, pairs),
    );
  } finally {
    await browser.close();
  }
}

await main();
