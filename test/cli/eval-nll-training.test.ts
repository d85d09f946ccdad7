// The sanity check of `sumi eval nll` that the evaluation issue asks for: a model trained longer
// has a lower bound. The tiny 8×8 model of tiny.json is trained 10 steps, a copy of that run is
// resumed to 400 steps, and both are scored on the same 32 MNIST digits with the same noise, with
// every one of the 100 timesteps (the exact bound).
import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import { describe, test } from 'node:test';

import { cliFixture, sumiInProcess } from './run-sumi.js';

const fx = cliFixture('sumi-nll-training-');

function train(out: string, steps: number, extra: string[] = []): ReturnType<typeof sumiInProcess> {
  return sumiInProcess([
    'train',
    '--data',
    'mnist',
    '--config',
    fx.config,
    '--steps',
    String(steps),
    '--batch',
    '8',
    '--lr',
    '2e-3',
    '--warmup',
    '5',
    '--save-every',
    '0',
    '--sample-every',
    '0',
    '--seed',
    '0',
    '--quiet',
    '--out',
    out,
    ...extra,
  ]);
}

interface Nll {
  bitsPerDim: number;
  standardError: number;
  data: { images: number };
}

async function nll(model: string): Promise<Nll> {
  const r = await sumiInProcess([
    'eval',
    'nll',
    '--model',
    model,
    '--data',
    'mnist',
    '--n',
    '32',
    '--stride',
    '1',
    '--seed',
    '0',
    '--json',
    '--quiet',
  ]);
  assert.equal(r.code, 0, `sumi eval nll exits 0 (stderr: ${r.stderr})`);
  return JSON.parse(r.stdout) as Nll;
}

void describe('sumi eval nll', () => {
  void test('a model trained longer has a lower bound (same images, same noise)', async () => {
    const short = fx.file('short');
    const long = fx.file('long');
    assert.equal((await train(short, 10)).code, 0, 'the 10-step run');
    await cp(short, long, { recursive: true });
    assert.equal((await train(long, 400, ['--resume'])).code, 0, 'resumed to 400 steps');
    const a = await nll(short);
    const b = await nll(long);
    assert.equal(a.data.images, 32);
    assert.ok(
      Number.isFinite(a.bitsPerDim) && Number.isFinite(b.bitsPerDim),
      `bits/dim ${a.bitsPerDim}, ${b.bitsPerDim}`,
    );
    const margin = 2 * Math.hypot(a.standardError, b.standardError);
    assert.ok(
      b.bitsPerDim < a.bitsPerDim - margin,
      `400 steps: ${b.bitsPerDim} ± ${b.standardError} bits/dim; ` +
        `10 steps: ${a.bitsPerDim} ± ${a.standardError}`,
    );
  });
});
