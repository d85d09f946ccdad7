// ownScope: the tensors a function made that are still alive go to the caller, tracked by no
// enclosing tidy; an exception frees them.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  add,
  cpuBackend,
  ownScope,
  setDefaultBackend,
  Tensor,
  tensor,
  tidy,
} from '../../src/engine/index.js';

setDefaultBackend(cpuBackend());

void test('ownScope hands over what fn made and no tidy frees it', () => {
  const before = Tensor.liveCount();
  let held: Tensor[] = [];
  const out = tidy(() => {
    const { result, made } = ownScope(() => {
      const a = tensor([1, 2]);
      const b = add(a, 1);
      tidy(() => add(b, 1)).dispose(); // made and freed inside: not handed over
      return () => b; // a closure: tidy would not see the tensor in it
    });
    held = made as Tensor[];
    return result;
  });
  assert.equal(held.length, 2);
  assert.ok(
    held.every((t) => !t.isDisposed),
    'handed-over tensors alive',
  );
  assert.deepEqual([...out().dataSync()], [2, 3]);
  for (const t of held) t.dispose();
  assert.equal(Tensor.liveCount(), before);
});

void test('ownScope frees what fn made when fn throws', () => {
  const before = Tensor.liveCount();
  assert.throws(
    () =>
      ownScope(() => {
        tensor([1, 2]);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(Tensor.liveCount(), before);
});
