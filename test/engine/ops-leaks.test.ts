/**
 * Every case of the op table leaks nothing on the CPU backend, forward or backward, in float64
 * and in float32 (the dtype of the fused float32 kernels).
 */
import { describe, test } from 'node:test';

import { cpuBackend } from '../../src/engine/index.js';
import { opCases } from './op-cases.js';
import { checkOpLeaks } from './op-leaks.js';

void describe('no op leaks a tensor or a storage (cpu)', () => {
  for (const oc of opCases) {
    void test(oc.name, () => {
      checkOpLeaks(oc, cpuBackend(), 'float64');
      checkOpLeaks(oc, cpuBackend(), 'float32');
    });
  }
});
