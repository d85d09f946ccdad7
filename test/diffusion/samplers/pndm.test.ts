import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PNDMScheduler } from '../../../src/diffusion/samplers/pndm.js';

void describe('PNDM schedules', () => {
  void it('PRK: three 4-stage steps at half intervals, then PLMS (as diffusers)', () => {
    const s = new PNDMScheduler();
    s.setTimesteps(10);
    assert.deepEqual(
      Array.from(s.prkTimesteps),
      [900, 850, 850, 800, 800, 750, 750, 700, 700, 650, 650, 600],
    );
    assert.deepEqual(Array.from(s.plmsTimesteps), [600, 500, 400, 300, 200, 100, 0]);
    assert.equal(s.timesteps.length, 19);
  });

  void it('PLMS with skipped PRK repeats the second timestep (pseudo-Heun start)', () => {
    const s = new PNDMScheduler({ skipPrkSteps: true });
    s.setTimesteps(10);
    assert.deepEqual(
      Array.from(s.timesteps),
      [900, 800, 800, 700, 600, 500, 400, 300, 200, 100, 0],
    );
    s.setTimesteps(1);
    assert.deepEqual(Array.from(s.timesteps), [0]);
  });
});
