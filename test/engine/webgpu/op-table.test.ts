/**
 * The engine's whole op table (test/engine/op-cases.ts) on the WebGPU backend: every case's
 * forward output, and for differentiable cases the gradient of Σ(out ⊙ R) for a fixed random R
 * with respect to every float input, in float32 against the CPU backend in float64.
 * Tolerance: each case's `tol`, else defaultParityTol (rtol 1e-4, atol 1e-5): float32 rounding
 * of a few chained ops, a few ulps per element, well inside it; the gradients get 10× that,
 * as they chain the forward's rounding through a second pass. Each case also runs the leak check
 * of test/engine/op-leaks.ts on this backend (live tensors and GPU storages around forward and
 * backward).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as E from '../../../src/engine/index.js';
import type { Backend } from '../../../src/engine/index.js';
import { defaultParityTol, gradInputs, makeInputs, opCases, type OpCase } from '../op-cases.js';
import { checkOpLeaks } from '../op-leaks.js';
import { setupGpu } from './setup.js';

const SEED = 3;

interface Result {
  out: Float64Array;
  grads: Float64Array[];
}

/** Runs one case on a backend; R is drawn from the CPU stream so both backends use the same. */
async function runCase(
  oc: OpCase,
  backend: Backend,
  dtype: 'float32' | 'float64',
): Promise<Result> {
  const xs = makeInputs(oc, SEED, { backend, dtype });
  const wrt = oc.differentiable ? gradInputs(oc.inputs(SEED)) : [];
  for (const i of wrt) xs[i]!.requireGrad();
  const out = oc.apply(...xs);
  const result: Result = { out: Float64Array.from(await out.data()), grads: [] };
  if (wrt.length > 0 && out.requiresGrad) {
    const r = E.randn(out.shape, { seed: 11, backend: E.cpuBackend(), dtype: 'float64' });
    const weights = await E.transfer(r, backend, out.dtype);
    E.sum(E.mul(out, weights)).backward();
    for (const i of wrt) {
      const g = xs[i]!.grad;
      result.grads.push(
        g === null ? new Float64Array(xs[i]!.size) : Float64Array.from(await g.data()),
      );
    }
  }
  return result;
}

function check(
  name: string,
  got: Float64Array,
  want: Float64Array,
  tol: { rtol: number; atol: number },
): void {
  assert.equal(got.length, want.length, `${name}: ${got.length} values, expected ${want.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (w === g) continue;
    const excess = Math.abs(g - w) - (tol.atol + tol.rtol * Math.abs(w));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  assert.ok(
    worst < 0,
    worst < 0
      ? name
      : `${name}: index ${worst}: webgpu ${got[worst]} vs cpu ${want[worst]} (rtol ${tol.rtol}, atol ${tol.atol})`,
  );
}

void describe('op table on webgpu vs the CPU reference', async () => {
  const gpu = await setupGpu();
  for (const oc of opCases) {
    void test(oc.name, { skip: gpu === null }, async () => {
      const tol = oc.tol ?? defaultParityTol;
      const want = await runCase(oc, E.cpuBackend(), 'float64');
      const got = await runCase(oc, gpu!, 'float32');
      check(`${oc.name} forward`, got.out, want.out, tol);
      assert.equal(got.grads.length, want.grads.length, `${oc.name}: gradient count`);
      const gtol = { rtol: tol.rtol * 10, atol: tol.atol * 10 };
      got.grads.forEach((g, k) => check(`${oc.name} grad ${k}`, g, want.grads[k]!, gtol));
      checkOpLeaks(oc, gpu!, 'float32');
    });
  }
});
