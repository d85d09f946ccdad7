/**
 * The leak check of the op table, shared by the CPU suite (ops-leaks.test.ts) and the WebGPU one
 * (webgpu/op-table.test.ts). It counts live tensors (Tensor.liveCount) and live storages (the
 * backend's liveCount) around each op and around its backward:
 * - forward, with no scope open and no graph recorded, leaves exactly its result: one tensor, and
 *   one storage unless the result is a view of an input;
 * - backward leaves exactly the new `.grad` tensors of the inputs (and their storages): every
 *   temporary of every vector-Jacobian product is freed as soon as it has been used.
 * Synchronous: no reads, so it costs one forward and one backward per case.
 */
import assert from 'node:assert/strict';

import * as E from '../../src/engine/index.js';
import type { Backend, FloatDType, Storage, Tensor } from '../../src/engine/index.js';
import { gradInputs, makeInputs, type OpCase } from './op-cases.js';

interface Counts {
  tensors: number;
  storages: number;
}

function counts(backend: Backend): Counts {
  return { tensors: E.Tensor.liveCount(), storages: backend.liveCount() };
}

function assertDelta(what: string, from: Counts, to: Counts, want: Counts): void {
  const got = { tensors: to.tensors - from.tensors, storages: to.storages - from.storages };
  if (got.tensors !== want.tensors || got.storages !== want.storages) {
    assert.fail(
      `${what}: ${got.tensors} tensors and ${got.storages} storages more than before, ` +
        `expected ${want.tensors} and ${want.storages}`,
    );
  }
}

/** Runs the forward and (for differentiable cases) the backward leak checks of one case. */
export function checkOpLeaks(
  oc: OpCase,
  backend: Backend,
  dtype: FloatDType = 'float64',
  seed = 4,
): void {
  const xs = makeInputs(oc, seed, { backend, dtype });
  try {
    const c0 = counts(backend);
    const y = oc.apply(...xs);
    const isView = xs.some((x) => x.storage === y.storage);
    assertDelta(`${oc.name} forward`, c0, counts(backend), {
      tensors: 1,
      storages: isView ? 0 : 1,
    });
    y.dispose();
    assertDelta(`${oc.name} forward, result disposed`, c0, counts(backend), {
      tensors: 0,
      storages: 0,
    });
    if (oc.differentiable) checkBackward(oc, xs, gradInputs(oc.inputs(seed)), backend);
  } finally {
    for (const x of xs) {
      x.zeroGrad();
      x.dispose();
    }
  }
}

function checkBackward(oc: OpCase, xs: Tensor[], wrt: readonly number[], backend: Backend): void {
  for (const i of wrt) xs[i]!.requireGrad();
  const c0 = counts(backend);
  E.tidy(() => {
    const y = oc.apply(...xs);
    assert.ok(y.requiresGrad, `${oc.name}: the result does not require grad`);
    const seedGrad = E.onesLike(y);
    const before = counts(backend);
    const priorStorages = new Set<Storage>([seedGrad.storage, ...xs.map((x) => x.storage)]);
    y.backward(seedGrad);
    const grads = wrt.map((i) => xs[i]!.grad).filter((g): g is Tensor => g !== null);
    const fresh = new Set(grads.map((g) => g.storage).filter((s) => !priorStorages.has(s)));
    assertDelta(`${oc.name} backward`, before, counts(backend), {
      tensors: grads.length,
      storages: fresh.size,
    });
  });
  for (const x of xs) x.zeroGrad();
  assertDelta(`${oc.name} forward and backward in a tidy`, c0, counts(backend), {
    tensors: 0,
    storages: 0,
  });
}
