// The training commands of docs/training.md as written (one step instead of thousands): the
// command with --resume appended continues its checkpoint, and the shipped model's command, whose
// settings differ, is refused naming each option that differs with both values.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { assertCleanError, sumiInProcess } from './run-sumi.js';

const DOC = fileURLToPath(new URL('../../docs/training.md', import.meta.url));

/** The `sumi train` commands of the doc's shell blocks, continuation lines joined, as argv. */
async function documentedTrainCommands(): Promise<string[][]> {
  const text = await readFile(DOC, 'utf8');
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .flatMap((b) => b.replace(/\\\n\s*/g, ' ').split('\n'))
    .filter((line) => line.startsWith('sumi train '))
    .map((line) => line.trim().split(/\s+/).slice(2));
}

/** argv with the value of `--name` replaced. */
function withValue(argv: readonly string[], name: string, value: string): string[] {
  const i = argv.indexOf(name);
  assert.ok(i >= 0 && i + 1 < argv.length, `the command has ${name}`);
  return [...argv.slice(0, i + 1), value, ...argv.slice(i + 2)];
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-resume-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('the documented training commands with --resume', () => {
  void test('the command, then the same command with --resume; the shipped command is refused by what differs', async () => {
    const commands = await documentedTrainCommands();
    const resumed = commands.find((c) => c.at(-1) === '--resume');
    assert.ok(resumed !== undefined, 'docs/training.md shows a command with --resume');
    const first = resumed.slice(0, -1);
    assert.ok(
      commands.some((c) => c.join(' ') === first.join(' ')),
      'the resumed command is the training command with --resume appended',
    );
    const shipped = commands.find((c) => c.includes('out/mnist-small'));
    assert.ok(shipped !== undefined, 'docs/training.md shows the shipped model command');

    const out = join(dir, 'mnist');
    const tiny = (argv: readonly string[]): string[] =>
      withValue(withValue(argv, '--steps', '1'), '--out', out);
    const a = await sumiInProcess([
      'train',
      ...tiny(first),
      '--quiet',
      '--save-every',
      '0',
      '--sample-every',
      '0',
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /trained to step 1\/1/);

    const b = await sumiInProcess(['train', ...tiny(resumed)]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /already at step 1 of 1; nothing to do/);

    const c = await sumiInProcess(['train', ...tiny(shipped), '--resume']);
    assertCleanError(
      c,
      2,
      /^sumi train: --resume continues under the checkpoint's settings; these differ: --batch: checkpoint 64, given 32; --lr: checkpoint 0\.0002, given 0\.0008\n/,
    );
  });
});
