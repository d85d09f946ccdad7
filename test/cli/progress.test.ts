// The one progress display (src/cli/progress.ts): in place on a terminal (throttled, the last
// state always drawn), plain lines elsewhere (each tenth of counted work; every N training steps
// and the last), messages above the line, nothing when quiet.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Progress, ProgressReporter } from '../../src/cli/progress.js';
import type { Progress as TrainProgress } from '../../src/diffusion/index.js';

function fakeStream(tty: boolean): { stream: NodeJS.WriteStream; out: string[] } {
  const out: string[] = [];
  const stream = {
    isTTY: tty,
    columns: 120,
    write: (s: string) => out.push(s) > 0,
  } as unknown as NodeJS.WriteStream;
  return { stream, out };
}

const step = (s: number, total: number): TrainProgress =>
  ({
    step: s,
    total,
    loss: 0.5,
    smoothLoss: 0.25,
    lr: 1e-3,
    gradNorm: 1.5,
    itPerSec: 2,
    etaSeconds: 10,
    emaDecay: null,
  }) as TrainProgress;

void describe('Progress (counted work)', () => {
  void test('off a terminal: one line per tenth of the work, then the note above', () => {
    const { stream, out } = fakeStream(false);
    const p = new Progress(false, { stream });
    for (let i = 0; i <= 40; i++) p.update('sampling steps', i, 40, 'batch 1/2');
    assert.equal(out.length, 11, out.join(''));
    assert.match(out[10]!, /^sampling steps: batch 1\/2, 40\/40, [0-9.]+s, ETA 0\.0s\n$/);
    p.note('note: cached');
    assert.equal(out.at(-1), 'note: cached\n');
  });

  void test('on a terminal: redrawn in place, throttled, the last state drawn, then erased', () => {
    const { stream, out } = fakeStream(true);
    const p = new Progress(false, { stream });
    for (let i = 1; i <= 1000; i++) p.update('reference features', i, 1000);
    assert.ok(out.length >= 2 && out.length < 50, `${out.length} draws of 1000 updates`);
    assert.ok(
      out.every((s) => s.startsWith('\r\x1b[2K')),
      'every draw replaces the line',
    );
    assert.match(out.at(-1)!, /reference features: 1000\/1000/);
    p.clear();
    assert.equal(out.at(-1), '\r\x1b[2K');
  });

  void test('quiet: nothing at all', () => {
    for (const tty of [false, true]) {
      const { stream, out } = fakeStream(tty);
      const p = new Progress(true, { stream });
      p.update('x', 1, 2);
      p.note('n');
      p.clear();
      assert.deepEqual(out, []);
    }
  });
});

void describe('ProgressReporter (training)', () => {
  void test('off a terminal: every N steps and the last, messages as lines', () => {
    const { stream, out } = fakeStream(false);
    const r = new ProgressReporter({ every: 4, stream });
    for (let s = 1; s <= 10; s++) r.update(step(s, 10), 10);
    assert.deepEqual(
      out.map((l) => /^step (\d+)\/10/.exec(l)?.[1]),
      ['4', '8', '10'],
    );
    assert.match(out[0]!, /loss 0\.5000 \(avg 0\.2500\) lr 1\.00e-3 \|g\| 1\.500 2\.00 it\/s/);
    r.message('checkpoint: step 10');
    r.finish();
    assert.equal(out.at(-1), 'checkpoint: step 10\n');
  });

  void test('on a terminal: a bar, a message above it, and the line ended at the finish', () => {
    const { stream, out } = fakeStream(true);
    const r = new ProgressReporter({ every: 4, stream });
    r.update(step(5, 10), 10);
    assert.ok(out[0]!.startsWith('\r\x1b[2K['), 'the bar replaces the line');
    assert.match(out[0]!, /\[#+\.+\] step 5\/10 +50%/);
    r.message('checkpoint');
    assert.equal(out.at(-1), '\r\x1b[2Kcheckpoint\n');
    r.update(step(10, 10), 10);
    assert.match(out.at(-1)!, /\[#+\] step 10\/10 100%/);
    r.finish();
    assert.equal(out.at(-1), '\n');
  });
});
