import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  CAPTIONS_FILE,
  captionsFor,
  classCaptionDataset,
  classPrompt,
  defaultPrompts,
  fashionMnistCaptions,
  mnistCaptions,
  readFolderCaptions,
} from '../../src/data/captions.js';
import type { Dataset, Sample } from '../../src/data/dataset.js';
import { loadEmoji } from '../../src/data/emoji.js';
import { loadImageFolder } from '../../src/data/folder.js';
import { encodePng } from '../../src/data/image/png.js';
import { preTokenize } from '../../src/data/tokenizer.js';

const root = mkdtempSync(join(tmpdir(), 'sumi-captions-'));
after(() => rmSync(root, { recursive: true, force: true }));

const PNG = encodePng({ width: 1, height: 1, channels: 1, data: new Uint8Array([128]) });

/** A folder of 1x1 PNGs at `images` (relative paths) plus text files. */
function folder(images: readonly string[], texts: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(root, 'f-'));
  const put = (rel: string, data: Uint8Array | string) => {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), data);
  };
  for (const rel of images) put(rel, PNG);
  for (const [rel, text] of Object.entries(texts)) put(rel, text);
  return dir;
}

/** A labelled dataset without pixels, as MNIST and Fashion-MNIST look to captions. */
function labelled(name: string, labels: readonly number[]): Dataset & { reads: number } {
  const ds = {
    name,
    length: labels.length,
    channels: 1 as const,
    height: 1,
    width: 1,
    numClasses: 10,
    reads: 0,
    get(i: number): Sample {
      ds.reads++;
      return { image: new Float32Array(1), label: labels[i]! };
    },
  };
  return ds;
}

const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

void describe('captions', () => {
  void it('describes MNIST digits in a few templates, the canonical one first', () => {
    assert.deepEqual(mnistCaptions(7), [
      'a handwritten seven',
      'the digit seven',
      'the number seven',
      'seven',
      'a drawing of a seven',
      '7',
      'a handwritten 7',
    ]);
    assert.equal(mnistCaptions(8)[4], 'a drawing of an eight');
    assert.equal(classPrompt('mnist', 0), 'a handwritten zero');
    assert.throws(() => mnistCaptions(10), /label 10 is not a digit/);
    const ds = labelled('mnist', [3, 3, 9]);
    const src = captionsFor(ds);
    assert.equal(src.candidates(2)[0], 'a handwritten nine');
    assert.equal(src.candidates(0), src.candidates(1), 'one shared list per class');
    src.candidates(0);
    assert.equal(ds.reads, 3, 'each label is read once');
    assert.equal([...src.all()].length, 70);
    assert.equal(src.prompts.length, 10);
    assert.throws(() => src.candidates(3), /index 3 out of range/);
  });

  void it('names Fashion-MNIST classes naturally', () => {
    assert.deepEqual(fashionMnistCaptions(9), [
      'a photo of an ankle boot',
      'an ankle boot',
      'a picture of an ankle boot',
      'a black and white photo of an ankle boot',
      'ankle boot',
    ]);
    assert.equal(classPrompt('fashion-mnist', 1), 'a photo of a pair of trousers');
    assert.deepEqual(defaultPrompts('fashion-mnist/test'), defaultPrompts('fashion-mnist'));
    assert.equal(defaultPrompts('fashion-mnist')[0], 'a photo of a t-shirt');
    const src = captionsFor(labelled('fashion-mnist/train', [7]));
    assert.equal(src.candidates(0)[1], 'a sneaker');
    // The trainer's pick: list[floor(u · length)].
    const list = src.candidates(0);
    assert.equal(list[Math.floor(0.999 * list.length)], 'sneaker');
  });

  void it("describes emoji by their Unicode names and the package's short names", () => {
    const ds = loadEmoji({ size: 8 });
    const src = captionsFor(ds);
    assert.deepEqual(src.candidates(0), ['grinning face', 'grinning face emoji', 'grinning']);
    const i = ds.entries.findIndex((e) => e.name === 'laughing');
    assert.ok(i >= 0, 'the laughing emoji is in the dataset');
    assert.deepEqual(src.candidates(i).slice(2), ['laughing', 'satisfied']);
    const all = [...src.all()];
    assert.equal(new Set(all).size, all.length, 'all() lists each caption once');
    assert.ok(all.includes('egypt flag'), "all() includes 'egypt flag'");
    assert.equal(src.prompts.length, 10, 'one prompt per category');
    assert.deepEqual(defaultPrompts('emoji'), src.prompts);
    assert.equal(src.prompts[0], 'grinning face');
  });

  void it('reads captions.jsonl and .txt sidecars of an image folder', () => {
    const dir = folder(['a.png', 'sub/b.png', 'sub/c.jpg', 'd.png'], {
      [CAPTIONS_FILE]: jsonl(
        { file: 'a.png', text: 'a red square' },
        { file: './sub/b.png', text: '  a blue circle ' },
        { file_name: 'a.png', text: 'red' },
        { file: 'd.png', text: 'green', source: 'ignored' },
      ),
      'sub/b.txt': 'blue\n\n  round thing\n',
      'sub/c.txt': '\uFEFFa jpeg\r\n',
    });
    const ds = loadImageFolder(dir, { size: 1 });
    const src = captionsFor(ds);
    assert.deepEqual(
      Array.from({ length: ds.length }, (_, i) => src.candidates(i)),
      [['a red square', 'red'], ['green'], ['a blue circle', 'blue', 'round thing'], ['a jpeg']],
    );
    assert.deepEqual(
      [...src.all()],
      ['a red square', 'red', 'green', 'a blue circle', 'blue', 'round thing', 'a jpeg'],
    );
    assert.deepEqual(src.prompts, ['a red square', 'green', 'a blue circle', 'a jpeg']);
  });

  void it('gives uncaptioned images the empty caption only when asked to', () => {
    const dir = folder(['a.png', 'b.png', 'c.png', 'd.png', 'e.png'], { 'a.txt': 'only a' });
    assert.throws(
      () => readFolderCaptions(dir, ['a.png', 'b.png', 'c.png', 'd.png', 'e.png']),
      (e: Error) =>
        e.message.startsWith(`${dir}: 4 of 5 images have no caption (b.png, c.png, d.png, ...)`),
    );
    const src = captionsFor(loadImageFolder(dir), { requireAll: false });
    assert.deepEqual(src.candidates(1), ['']);
    assert.deepEqual([...src.all()], ['only a']);
  });

  void it('names the file and line of a bad caption', () => {
    const bad = (texts: Record<string, string>, re: RegExp) => {
      const dir = folder(['a.png', 'b.png'], texts);
      assert.throws(
        () => captionsFor(loadImageFolder(dir)),
        (e: Error) => {
          assert.match(e.message, re);
          assert.ok(e.message.startsWith(dir), `the message names the folder: ${e.message}`);
          return true;
        },
      );
    };
    const both = { 'a.txt': 'x', 'b.txt': 'y' };
    bad({}, /no captions: write captions\.jsonl/);
    bad({ ...both, [CAPTIONS_FILE]: '\n  \n' }, /captions\.jsonl: empty captions file/);
    bad(
      { ...both, [CAPTIONS_FILE]: `${jsonl({ file: 'a.png', text: 'ok' })}{"file": "b.png",\n` },
      /captions\.jsonl:2: not valid JSON/,
    );
    bad({ ...both, [CAPTIONS_FILE]: '["a.png", "x"]\n' }, /captions\.jsonl:1: expected an object/);
    bad(
      {
        ...both,
        [CAPTIONS_FILE]: jsonl({ file: 'a.png', text: 'ok' }, { file: 'z.png', text: 'z' }),
      },
      /captions\.jsonl:2: 'z\.png' is not one of the folder's images/,
    );
    bad(
      { ...both, [CAPTIONS_FILE]: jsonl({ file: 'a.png', text: ' ' }) },
      /captions\.jsonl:1: empty text for 'a\.png'/,
    );
    bad({ ...both, [CAPTIONS_FILE]: jsonl({ text: 'no file' }) }, /captions\.jsonl:1: "file" must/);
    bad(
      { ...both, [CAPTIONS_FILE]: jsonl({ file: 'a.png', text: 3 }) },
      /:1: "text" must be a string/,
    );
    bad({ 'a.txt': 'x', 'b.txt': ' \n' }, /b\.txt: empty captions file/);
    bad({ 'a.txt': 'x' }, /1 of 2 images have no caption \(b\.png\)/);
  });

  void it('has prompts for the named datasets and says what to do for others', () => {
    assert.equal(defaultPrompts('mnist')[7], 'a handwritten seven');
    assert.deepEqual(defaultPrompts('mnist-full/train'), defaultPrompts('mnist'));
    assert.deepEqual(
      ['mnist', 'mnist-full', 'mnist-full/test', 'fashion-mnist/all'].map(classCaptionDataset),
      ['mnist', 'mnist', 'mnist', 'fashion-mnist'],
    );
    // A folder that happens to be called like a dataset is a folder.
    assert.deepEqual(
      ['mnist/train', 'mnist-full/digits', 'data/mnist', 'emoji'].map(classCaptionDataset),
      [null, null, null, null],
    );
    assert.throws(() => defaultPrompts('/data/cats'), /captionsFor\(dataset\)\.prompts/);
    assert.throws(() => captionsFor(labelled('cifar10', [0])), /no captions for dataset 'cifar10'/);
  });

  void it('gives every class prompt words a tokenizer keeps', () => {
    for (const p of [...defaultPrompts('mnist'), ...defaultPrompts('fashion-mnist')]) {
      assert.ok(preTokenize(p).length >= 1, `'${p}' has words`);
    }
    assert.deepEqual(preTokenize(classPrompt('fashion-mnist', 0)), [
      'a',
      'photo',
      'of',
      'a',
      't',
      '-',
      'shirt',
    ]);
  });
});
