// The checks of scripts/kill-resume.ts on output folders made by hand (no training): identical
// runs compare equal, and each kind of difference the script must catch is reported; where a save
// was when the process died is named from the folder's entries before and after.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { compareRuns, killInstant, lastLoggedStep } from '../../scripts/kill-resume.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-kill-resume-test-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const metric = (step: number, loss: number, elapsed: number): string =>
  `${JSON.stringify({ step, loss, lr: 1e-3, it_per_sec: 10 / elapsed, elapsed_s: elapsed })}\n`;

/** An output folder: checkpoint/ with weights and trainer state, and a metrics log. */
async function makeRun(name: string, elapsed: number): Promise<string> {
  const run = join(dir, name);
  await mkdir(join(run, 'checkpoint', 'unet'), { recursive: true });
  await writeFile(join(run, 'checkpoint', 'unet', 'weights.safetensors'), Buffer.from([1, 2, 3]));
  await writeFile(
    join(run, 'checkpoint', 'trainer_state.json'),
    JSON.stringify({ step: 2, elapsedSeconds: elapsed }),
  );
  await writeFile(
    join(run, 'metrics.jsonl'),
    metric(1, 0.5, elapsed / 2) + metric(2, 0.4, elapsed),
  );
  return run;
}

void describe('kill-resume: comparing two runs', () => {
  void test('runs that differ only in their timings are equal', async () => {
    const a = await makeRun('a', 3);
    const b = await makeRun('b', 7);
    assert.deepEqual(await compareRuns(a, b), []);
  });

  void test('a changed weight byte, a missing file, a repeated or changed metric, an extra entry', async () => {
    const a = await makeRun('c', 3);
    const b = join(dir, 'd');
    await cp(a, b, { recursive: true });
    await writeFile(join(b, 'checkpoint', 'unet', 'weights.safetensors'), Buffer.from([1, 9, 3]));
    assert.deepEqual(await compareRuns(a, b), [
      'unet/weights.safetensors: differs (3 vs 3 bytes, first at byte 1)',
    ]);

    await rm(join(b, 'checkpoint', 'unet', 'weights.safetensors'));
    const state = join(b, 'checkpoint', 'trainer_state.json');
    await writeFile(state, JSON.stringify({ step: 3, elapsedSeconds: 3 }));
    await writeFile(
      join(b, 'metrics.jsonl'),
      (await readFile(join(a, 'metrics.jsonl'), 'utf8')) + metric(2, 0.4, 9),
    );
    await mkdir(join(b, 'checkpoint.old'));
    const problems = await compareRuns(a, b);
    assert.deepEqual(problems, [
      'output folders differ: [checkpoint, metrics.jsonl] vs [checkpoint, checkpoint.old, metrics.jsonl]',
      `unet/weights.safetensors: only in ${a}`,
      'trainer_state.json: differs (elapsedSeconds aside)',
      `${join(b, 'metrics.jsonl')}: step 2 is logged twice`,
    ]);

    await rm(join(b, 'checkpoint.old'), { recursive: true });
    await writeFile(join(b, 'metrics.jsonl'), metric(1, 0.5, 1) + metric(2, 0.41, 2));
    assert.match(
      (await compareRuns(a, b)).at(-1)!,
      /^metrics: step 2 differs: .*"loss":0\.4,.* vs .*"loss":0\.41,/,
    );
  });
});

void describe('kill-resume: where a save was when the process died', () => {
  void test('named from what is new in the output folder', () => {
    const tmp = 'checkpoint.tmp-1a2b';
    const cases: [string[], string[], string][] = [
      [[], [], 'before the first save'],
      [[], ['metrics.jsonl', tmp], 'in the first save'],
      [['checkpoint'], ['checkpoint', tmp], 'in a save, writing files'],
      [['checkpoint'], ['checkpoint.old', tmp], 'in a save, writing files'],
      [['checkpoint'], ['checkpoint.old'], 'in a save, between its renames'],
      [
        ['checkpoint'],
        ['checkpoint', 'checkpoint.old'],
        'in a save, removing the previous checkpoint',
      ],
      [['checkpoint'], ['checkpoint'], 'between saves'],
      // Left by the kill before: the temporary of an unfinished save, a checkpoint.old.
      [['checkpoint', tmp], ['checkpoint', tmp], 'between saves'],
      [['checkpoint.old'], ['checkpoint.old'], 'before the first save'],
      [['checkpoint.old', tmp], ['checkpoint', 'checkpoint.old'], 'between saves'],
    ];
    for (const [before, after, want] of cases) {
      assert.equal(
        killInstant(before, after),
        want,
        `[${before.join(', ')}] -> [${after.join(', ')}]`,
      );
    }
  });
});

void describe('kill-resume: the last step a run logged', () => {
  void test('the last complete line; a line still being written or cut short does not count', async () => {
    const log = join(dir, 'log.jsonl');
    assert.equal(await lastLoggedStep(log), -1, 'no log yet');
    await writeFile(log, metric(1, 0.5, 1) + metric(2, 0.4, 2));
    assert.equal(await lastLoggedStep(log), 2);
    await writeFile(log, metric(1, 0.5, 1) + metric(2, 0.4, 2) + '{"step":3,"lo');
    assert.equal(await lastLoggedStep(log), 2);
    await writeFile(log, metric(1, 0.5, 1) + '{"step":2,"lo\n');
    assert.equal(await lastLoggedStep(log), 1);
  });
});
