import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  buildTextCorpus,
  corpusSentences,
  decodeRows,
  EmptyCorpusError,
  shuffledIndices,
  splitFortunes,
} from '../../src/data/text-corpus.js';
import { FORTUNES_DIR, loadTextCorpus } from '../../src/data/text-corpus-fs.js';

const tmp: string[] = [];
after(async () => {
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});

const FORTUNE_FILE = [
  'A fool and his money are soon parted.',
  '\t\t-- Proverb',
  '%',
  'The cat sat on the mat.  The dog sat on the cat!',
  '%',
  '',
  '%',
  'Why? Because the dog was tired of the mat.',
  '%',
].join('\n');

void describe('text corpus', () => {
  void it('splits fortune entries at % lines and drops attribution lines', () => {
    assert.deepEqual(splitFortunes(FORTUNE_FILE), [
      'A fool and his money are soon parted.',
      'The cat sat on the mat.  The dog sat on the cat!',
      'Why? Because the dog was tired of the mat.',
    ]);
  });

  void it('splits sentences, keeps minWords..maxWords words, each sentence once', () => {
    const s = corpusSentences([...splitFortunes(FORTUNE_FILE), 'the cat sat on the mat.'], {
      minWords: 3,
      maxWords: 9,
    });
    assert.deepEqual(
      s.map((w) => w.join(' ')),
      [
        'a fool and his money are soon parted .',
        'the cat sat on the mat .',
        'the dog sat on the cat !',
        'because the dog was tired of the mat .',
      ],
    );
  });

  void it('builds fixed-length rows <bos> words <eos> <pad>… with no unknown word', () => {
    const texts = Array.from({ length: 30 }, (_, i) => `word${i % 6} and word${i % 5} go home.`);
    const c = buildTextCorpus('toy', texts, { seqLength: 8, heldOutFraction: 0.2 });
    const L = 8;
    const tok = c.tokenizer;
    assert.equal(c.train.length, 24);
    assert.equal(c.heldOut.length, 6);
    assert.equal(c.trainIds.length, c.train.length * L);
    for (let r = 0; r < c.train.length; r++) {
      const row = c.trainIds.subarray(r * L, (r + 1) * L);
      assert.equal(row[0], tok.bosTokenId);
      assert.ok(!row.includes(tok.unkTokenId), `row ${r} has <unk>`);
      const n = c.train[r]!.split(' ').length;
      assert.equal(row[n + 1], tok.eosTokenId);
      for (let k = n + 2; k < L; k++) assert.equal(row[k], tok.padTokenId);
    }
    assert.deepEqual(decodeRows(tok, c.trainIds, L), c.train);
    // held-out and training sentences are disjoint and together every kept sentence
    const all = new Set([...c.train, ...c.heldOut]);
    assert.equal(all.size, c.train.length + c.heldOut.length);
  });

  void it('keeps only sentences whose words are all in the vocabulary', () => {
    const texts = ['x y z.', 'x y w.', 'x y q.', 'rare words here.'];
    // '.', x, y, then by code-unit order here, q: 'x y q .' is the one sentence left
    const c = buildTextCorpus('t', texts, { maxVocabSize: 9, heldOutFraction: 0 });
    assert.deepEqual(c.train, ['x y q .']);
    assert.deepEqual(c.tokenizer.vocab.slice(4), ['.', 'q', 'x', 'y']);
    assert.throws(
      () => buildTextCorpus('t', texts, { maxVocabSize: 8 }),
      /whose words are all among the 8 kept/,
    );
  });

  void it('holds out the same sentences for the same seed, others for another seed', () => {
    const texts = Array.from({ length: 60 }, (_, i) => `a b c${i}.`);
    const a = buildTextCorpus('t', texts, { seed: 1, heldOutFraction: 0.2 });
    const b = buildTextCorpus('t', texts, { seed: 1, heldOutFraction: 0.2 });
    const c = buildTextCorpus('t', texts, { seed: 2, heldOutFraction: 0.2 });
    assert.deepEqual(a.heldOut, b.heldOut);
    assert.notDeepEqual(a.heldOut, c.heldOut);
    assert.equal(a.heldOut.length, 12);
    assert.deepEqual(
      [...shuffledIndices(10, 3)].sort((x, y) => x - y),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });

  void it('refuses an empty corpus with one error naming it', async () => {
    assert.throws(() => buildTextCorpus('nothing', []), EmptyCorpusError);
    assert.throws(
      () => buildTextCorpus('short', ['hi.', 'no!']),
      (e: Error) =>
        e instanceof EmptyCorpusError && /^short: no sentences of 3 to 14 words/.test(e.message),
    );
    const d = await mkdtemp(join(tmpdir(), 'sumi-corpus-'));
    tmp.push(d);
    await writeFile(join(d, 'empty.txt'), '\n\n');
    await assert.rejects(loadTextCorpus(join(d, 'empty.txt')), EmptyCorpusError);
    await assert.rejects(loadTextCorpus(join(d, 'missing')), /no such file or folder/);
  });

  void it('reads a folder of fortune files and text files', async () => {
    const d = await mkdtemp(join(tmpdir(), 'sumi-corpus-'));
    tmp.push(d);
    await writeFile(join(d, 'a'), FORTUNE_FILE);
    await writeFile(join(d, 'a.dat'), 'binary index, skipped');
    await writeFile(join(d, 'b.txt'), 'one more line of text\nand another line here\n');
    const c = await loadTextCorpus(d, { heldOutFraction: 0 });
    assert.deepEqual(
      [...c.train].sort(),
      [
        'a fool and his money are soon parted .',
        'and another line here',
        'one more line of text',
        'the cat sat on the mat .',
        'the dog sat on the cat !',
        'because the dog was tired of the mat .',
      ].sort(),
    );
  });

  void it(
    'reads the fortunes package',
    { skip: !existsSync(FORTUNES_DIR) && 'fortunes is not installed' },
    async () => {
      const c = await loadTextCorpus('fortunes');
      assert.ok(c.train.length > 5000, `${c.train.length} training sentences`);
      assert.ok(c.heldOut.length > 200, `${c.heldOut.length} held out`);
      assert.ok(c.tokenizer.vocabSize <= 5000, `${c.tokenizer.vocabSize} ids`);
    },
  );
});
