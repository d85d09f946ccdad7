import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  BOS_TOKEN,
  encodedTensors,
  EOS_TOKEN,
  parseTokenizer,
  TokenizerError,
  PAD_TOKEN,
  preTokenize,
  SPECIAL_TOKENS,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  UNK_TOKEN,
  WordLevelTokenizer,
} from '../../src/data/tokenizer.js';
import { loadTokenizer, saveTokenizer } from '../../src/data/tokenizer-fs.js';

const captions = [
  'a handwritten seven',
  'A handwritten two',
  'the digit seven',
  "a photo of a T-shirt, it's grey",
];

const tmp: string[] = [];
after(async () => {
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sumi-tok-'));
  tmp.push(d);
  return d;
}

void describe('WordLevelTokenizer', () => {
  void it('normalizes (NFKC, lowercase) and splits words from single punctuation', () => {
    assert.deepEqual(preTokenize("A T-shirt, it's  grey!!"), [
      'a',
      't',
      '-',
      'shirt',
      ',',
      "it's",
      'grey',
      '!',
      '!',
    ]);
    // NFKC: the ligature ﬁ and full-width Ａ become fi and A; é stays in its word.
    assert.deepEqual(preTokenize('ﬁne Ａ café 42nd'), ['fine', 'a', 'café', '42nd']);
    assert.deepEqual(preTokenize('  \t\n'), []);
  });

  void it('numbers special tokens 0..3, then words by count, then alphabetically', () => {
    const tok = WordLevelTokenizer.fromTexts(captions);
    assert.deepEqual(tok.vocab.slice(0, 4), [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN]);
    assert.deepEqual(
      [tok.padTokenId, tok.unkTokenId, tok.bosTokenId, tok.eosTokenId],
      [0, 1, 2, 3],
    );
    // a: 4; handwritten, seven: 2; the rest once, in code-unit order
    assert.deepEqual(tok.vocab.slice(4), [
      'a',
      'handwritten',
      'seven',
      ',',
      '-',
      'digit',
      'grey',
      "it's",
      'of',
      'photo',
      'shirt',
      't',
      'the',
      'two',
    ]);
    // Longest caption: 10 words + start + end.
    assert.equal(tok.modelMaxLength, 12);
    const again = WordLevelTokenizer.fromTexts([...captions].reverse());
    assert.deepEqual(again.vocab, tok.vocab, 'independent of caption order');
  });

  void it('leaves out rare words with minFrequency and caps the vocabulary', () => {
    const tok = WordLevelTokenizer.fromTexts(captions, { minFrequency: 2 });
    assert.deepEqual(tok.vocab.slice(4), ['a', 'handwritten', 'seven']);
    assert.equal(WordLevelTokenizer.fromTexts(captions, { maxVocabSize: 6 }).vocabSize, 6);
    assert.throws(
      () => WordLevelTokenizer.fromTexts(captions, { minFrequency: 0 }),
      /minFrequency/,
    );
    assert.throws(
      () => WordLevelTokenizer.fromTexts(captions, { maxVocabSize: 3 }),
      /maxVocabSize/,
    );
  });

  void it('encodes start, words, end and padding; truncation keeps the end token', () => {
    const tok = WordLevelTokenizer.fromTexts(captions);
    const id = (w: string) => tok.tokenToId(w);
    const enc = tok.encode(['a handwritten seven', '', 'a purple seven', 'the digit seven'], {
      maxLength: 5,
    });
    assert.equal(enc.batchSize, 4);
    assert.equal(enc.length, 5);
    assert.deepEqual(
      Array.from(enc.inputIds),
      [
        [2, id('a'), id('handwritten'), id('seven'), 3],
        [2, 3, 0, 0, 0], // "" is the unconditional prompt
        [2, id('a'), 1, id('seven'), 3], // purple is unknown
        [2, id('the'), id('digit'), id('seven'), 3],
      ].flat(),
    );
    assert.deepEqual(
      Array.from(enc.attentionMask),
      [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    );
    const cut = tok.encode(['a photo of a t-shirt'], { maxLength: 4 });
    assert.deepEqual(Array.from(cut.inputIds), [2, id('a'), id('photo'), 3]);
    assert.equal(tok.encode(['a']).length, tok.modelMaxLength, 'default length');
    assert.throws(() => tok.encode(['a'], { maxLength: 1 }), /maxLength must be an integer >= 2/);
    const t = encodedTensors(enc);
    assert.deepEqual(t.inputIds.shape, [4, 5]);
    assert.equal(t.attentionMask.dtype, 'int32');
  });

  void it('reads special tokens written in the text, and decodes', () => {
    const tok = WordLevelTokenizer.fromTexts(captions);
    assert.deepEqual(tok.tokenize(`seven${EOS_TOKEN}two`), ['seven', EOS_TOKEN, 'two']);
    const ids = tok.encodeOne('A handwritten <|pad|> seven');
    assert.deepEqual(ids.slice(2, 4), [tok.tokenToId('handwritten'), 0]);
    assert.equal(
      tok.decode(tok.encode(['A Handwritten SEVEN'], { maxLength: 8 }).inputIds),
      'a handwritten seven',
    );
    assert.equal(
      tok.decode([2, 4, 1, 3, 0], { skipSpecialTokens: false }),
      `${BOS_TOKEN} a ${UNK_TOKEN} ${EOS_TOKEN} ${PAD_TOKEN}`,
    );
    assert.throws(() => tok.decode([99]), /id 99/);
  });

  void it("saves Hugging Face's tokenizer.json and tokenizer_config.json, and loads them back", async () => {
    const tok = WordLevelTokenizer.fromTexts(captions, { modelMaxLength: 16 });
    const dir = join(await tempDir(), 'tokenizer');
    await saveTokenizer(tok, dir);
    const json = JSON.parse(await readFile(join(dir, TOKENIZER_FILE), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    assert.equal(json.model!.type, 'WordLevel');
    assert.equal(json.model!.unk_token, UNK_TOKEN);
    assert.equal((json.model!.vocab as Record<string, number>).seven, tok.tokenToId('seven'));
    assert.equal(json.post_processor!.type, 'TemplateProcessing');
    assert.deepEqual(json.padding!.strategy, { Fixed: 16 });
    assert.equal(json.truncation!.max_length, 16);
    const cfg = JSON.parse(await readFile(join(dir, TOKENIZER_CONFIG_FILE), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(cfg.tokenizer_class, 'PreTrainedTokenizerFast');
    assert.equal(cfg.model_max_length, 16);
    assert.equal(cfg.eos_token, EOS_TOKEN);
    const back = await loadTokenizer(dir);
    assert.deepEqual(back.vocab, tok.vocab);
    assert.equal(back.modelMaxLength, 16);
    const texts = ['a handwritten seven, grey', ''];
    assert.deepEqual(back.encode(texts), tok.encode(texts));
  });

  void it('names the file and key of what is wrong when loading', async () => {
    const tok = WordLevelTokenizer.fromTexts(captions);
    const root = await tempDir();
    await assert.rejects(loadTokenizer(join(root, 'none')), /none: no such tokenizer folder/);
    const bad = async (
      edit: (doc: Record<string, unknown>, cfg: Record<string, unknown>) => void,
      re: RegExp,
    ) => {
      const dir = await mkdtemp(join(root, 't-'));
      const doc = JSON.parse(tok.tokenizerJson()) as Record<string, unknown>;
      const cfg = JSON.parse(tok.tokenizerConfigJson()) as Record<string, unknown>;
      edit(doc, cfg);
      await writeFile(join(dir, TOKENIZER_FILE), JSON.stringify(doc));
      await writeFile(join(dir, TOKENIZER_CONFIG_FILE), JSON.stringify(cfg));
      await assert.rejects(loadTokenizer(dir), re);
    };
    const model = (d: Record<string, unknown>) => d.model as Record<string, unknown>;
    const vocab = (d: Record<string, unknown>) => model(d).vocab as Record<string, unknown>;
    await bad(
      (d) => (model(d).type = 'BPE'),
      /tokenizer\.json: model\.type: expected "WordLevel", found "BPE"/,
    );
    await bad((d) => (vocab(d).grey = 4), /model\.vocab: id 4 is given to both "a" and "grey"/);
    await bad((d) => (vocab(d).grey = 99), /model\.vocab\["grey"\]: expected an id in \[0, 18\)/);
    await bad((d) => (vocab(d).grey = 'x'), /model\.vocab\["grey"\]/);
    await bad((d) => delete vocab(d)[UNK_TOKEN], /tokenizer\.json: model\.vocab: no <\|unk\|>/);
    await bad(
      (d) => (d.normalizer = { type: 'Lowercase' }),
      /tokenizer\.json: normalizer: Sumi implements only/,
    );
    await bad(
      (d) => (d.pre_tokenizer = { type: 'Whitespace' }),
      /tokenizer\.json: pre_tokenizer: Sumi implements only/,
    );
    await bad(
      (d) => ((d.truncation as Record<string, unknown>).max_length = 3),
      /tokenizer\.json: truncation: expected null or/,
    );
    await bad(
      (_, c) => (c.tokenizer_class = 'CLIPTokenizer'),
      /tokenizer_config\.json: tokenizer_class: expected "PreTrainedTokenizerFast"/,
    );
    await bad(
      (_, c) => (c.model_max_length = 1),
      /tokenizer_config\.json: model_max_length: expected an integer >= 2/,
    );
    await bad((_, c) => (c.eos_token = '</s>'), /tokenizer_config\.json: eos_token: expected/);
    const dir = await mkdtemp(join(root, 'm-'));
    await writeFile(join(dir, TOKENIZER_FILE), '{"model": ');
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: not valid JSON/);
    await writeFile(join(dir, TOKENIZER_FILE), tok.tokenizerJson());
    await assert.rejects(loadTokenizer(dir), /tokenizer_config\.json: missing/);
    await mkdir(join(root, 'empty'));
    await assert.rejects(loadTokenizer(join(root, 'empty')), /tokenizer\.json: missing/);
    // HF also writes special tokens in tokenizer_config.json as {content: ...}.
    const ok = await mkdtemp(join(root, 'ok-'));
    const cfg = JSON.parse(tok.tokenizerConfigJson()) as Record<string, unknown>;
    cfg.eos_token = { content: EOS_TOKEN, special: true };
    await writeFile(join(ok, TOKENIZER_FILE), tok.tokenizerJson());
    await writeFile(join(ok, TOKENIZER_CONFIG_FILE), JSON.stringify(cfg));
    assert.equal((await loadTokenizer(ok)).vocabSize, tok.vocabSize);
    assert.equal(SPECIAL_TOKENS.length, 4);
  });

  void it('refuses deep nesting, a sequence length it cannot allocate, and non-UTF-8 files', async () => {
    const tok = WordLevelTokenizer.fromTexts(captions);
    const doc = JSON.parse(tok.tokenizerJson()) as Record<string, unknown>;
    const cfg = JSON.parse(tok.tokenizerConfigJson()) as Record<string, unknown>;
    const deep = `${'['.repeat(10000)}${']'.repeat(10000)}`;
    const withDeep = JSON.stringify({ ...doc, normalizer: 0 }).replace(
      '"normalizer":0',
      `"normalizer":${deep}`,
    );
    assert.throws(
      () => parseTokenizer(withDeep, JSON.stringify(cfg), 'tok'),
      (e: Error) =>
        e instanceof TokenizerError &&
        /tok\/tokenizer\.json: nested more than 32 levels deep/.test(e.message),
    );
    // Consistent in both files, so only the size itself is wrong.
    const huge = { ...doc, truncation: { ...(doc.truncation as object), max_length: 2 ** 31 } };
    assert.throws(
      () =>
        parseTokenizer(
          JSON.stringify(huge),
          JSON.stringify({ ...cfg, model_max_length: 2 ** 31 }),
          'tok',
        ),
      /tok\/tokenizer_config\.json: model_max_length: expected an integer >= 2 \(at most 65536\), found 2147483648/,
    );
    const dir = await mkdtemp(join(await tempDir(), 'latin1-'));
    await writeFile(join(dir, TOKENIZER_FILE), Buffer.from([0x7b, 0xe9, 0x7d]));
    await writeFile(join(dir, TOKENIZER_CONFIG_FILE), tok.tokenizerConfigJson());
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: not UTF-8 text/);
  });
});
