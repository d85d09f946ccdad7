/**
 * encodeConditions keeps only the conditioning it returns: a text encoder's intermediates (every
 * layer's activations) are freed, so that a page or a batch loop that encodes prompts again and
 * again holds its tensor count steady.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { disposeConditioning, encodeConditions, loadPipeline } from '../../src/diffusion/index.js';
import { cpuBackend, setDefaultBackend, Tensor } from '../../src/engine/index.js';

void test('encodeConditions of prompts, with and without guidance, leaves no tensor behind', async () => {
  setDefaultBackend(cpuBackend());
  const p = await loadPipeline('models/mnist-text');
  const backend = p.model.parameters()[0]!.backend;
  for (const guidanceScale of [1, 3]) {
    const before = Tensor.liveCount();
    const { cond, uncond } = encodeConditions(
      p.condition,
      { values: ['a handwritten three', 'a handwritten seven'], guidanceScale },
      backend,
    );
    // What it returns: hidden states and attention mask, for cond (and uncond with guidance).
    assert.equal(Tensor.liveCount() - before, guidanceScale === 1 ? 2 : 4);
    disposeConditioning(cond);
    if (uncond !== null) disposeConditioning(uncond);
    assert.equal(Tensor.liveCount(), before, `tensors left at guidance ${guidanceScale}`);
  }
});
