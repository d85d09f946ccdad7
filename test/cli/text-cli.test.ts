/** sumi train --task text and sumi sample --task text end to end, on a tiny corpus and model. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { assertInputError, sumiInProcess } from './run-sumi.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-text-cli-'));
  const subjects = ['the cat', 'a dog', 'my friend', 'the old man', 'a small bird'];
  const verbs = ['sees', 'likes', 'finds', 'loses'];
  const objects = ['the ball', 'a book', 'the sun', 'some bread'];
  const lines: string[] = [];
  for (const s of subjects)
    for (const v of verbs) for (const o of objects) lines.push(`${s} ${v} ${o}.`);
  await writeFile(join(dir, 'corpus.txt'), `${lines.join('\n')}\n`);
  await writeFile(join(dir, 'empty.txt'), 'no.\nnope!\n');
  await writeFile(
    join(dir, 'tiny.json'),
    JSON.stringify({
      hidden_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 8,
    }),
  );
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const common = (): string[] => [
  '--task',
  'text',
  '--data',
  join(dir, 'corpus.txt'),
  '--seq-len',
  '8',
  '--config',
  join(dir, 'tiny.json'),
  '--batch',
  '8',
  '--timesteps',
  '50',
  '--quiet',
];

void describe('sumi train/sample --task text', () => {
  void it('trains, resumes bit for bit, samples, infills and scores', async () => {
    const full = join(dir, 'full');
    let r = await sumiInProcess(['train', ...common(), '--steps', '3', '--out', full]);
    assert.equal(r.code, 0, r.stderr);
    const half = join(dir, 'half');
    r = await sumiInProcess([
      'train',
      ...common(),
      '--steps',
      '3',
      '--stop-at',
      '2',
      '--out',
      half,
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await sumiInProcess(['train', ...common(), '--steps', '3', '--resume', '--out', half]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['model/model.safetensors', 'model_raw.safetensors', 'optimizer.safetensors']) {
      const a = await readFile(join(full, 'checkpoint', f));
      const b = await readFile(join(half, 'checkpoint', f));
      assert.ok(a.equals(b), `${f}: 3 steps equal 2 steps + resume`);
    }
    const lm = join(dir, 'lm');
    r = await sumiInProcess(['train', ...common(), '--lm', '--steps', '2', '--out', lm]);
    assert.equal(r.code, 0, r.stderr);

    const metrics = join(dir, 'metrics.json');
    r = await sumiInProcess([
      'sample',
      '--task',
      'text',
      '--model',
      full,
      '-n',
      '5',
      '--steps',
      '4',
      '--lm',
      lm,
      '--metrics',
      metrics,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 5);
    assert.match(r.stderr, /metrics \(5 samples\): perplexity \d/);
    const m = JSON.parse(await readFile(metrics, 'utf8')) as {
      samples: number;
      distinct2: number;
      samplePerplexity: number;
    };
    assert.equal(m.samples, 5);
    assert.ok(m.distinct2 >= 0 && m.distinct2 <= 1, `distinct-2 ${m.distinct2}`);
    assert.ok(m.samplePerplexity > 1, `perplexity ${m.samplePerplexity}`);

    r = await sumiInProcess([
      'sample',
      '--task',
      'text',
      '--model',
      full,
      '--n',
      '3',
      '--steps',
      '4',
      '--infill',
      'the ___ sees ___ ball .',
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n');
    assert.equal(rows.length, 3);
    for (const row of rows) assert.match(row, /^the \[\S+\] sees \[\S+\] ball \.$/);
  });

  void it('refuses an empty corpus, a missing one and a bad infill with one line, exit 2', async () => {
    const out = join(dir, 'never');
    assertInputError(
      await sumiInProcess([
        'train',
        '--task',
        'text',
        '--data',
        join(dir, 'empty.txt'),
        '--out',
        out,
      ]),
      /empty\.txt: no sentences of 3 to 14 words in its text \(an empty corpus\)/,
      out,
    );
    assertInputError(
      await sumiInProcess([
        'train',
        '--task',
        'text',
        '--data',
        join(dir, 'nothing'),
        '--out',
        out,
      ]),
      /nothing: no such file or folder/,
      out,
    );
    const r = await sumiInProcess([
      'sample',
      '--task',
      'text',
      '--model',
      join(dir, 'full'),
      '--infill',
      'the zebra ___',
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--infill: not in the model's vocabulary: zebra/);
    assert.equal(existsSync(out), false);
  });
});
