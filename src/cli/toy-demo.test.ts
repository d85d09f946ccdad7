import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodePng } from '../data/index.js';
import { runToyDemo } from './toy-demo.js';

void describe('2-D toy demo', () => {
  void it('learns the mixture: samples land near the data, unlike the starting noise', () => {
    const r = runToyDemo({ steps: 600, batch: 128, samples: 400, samplerSteps: 25, seed: 1 });
    assert.ok(Number.isFinite(r.finalLoss), `final loss ${r.finalLoss}`);
    assert.ok(
      r.sampleDistance < 0.5 * r.noiseDistance,
      `samples ${r.sampleDistance} vs noise ${r.noiseDistance} from the data`,
    );
    const img = decodePng(r.png, 'demo');
    assert.deepEqual([img.width, img.height, img.channels], [520, 256, 3]);
  });
});
