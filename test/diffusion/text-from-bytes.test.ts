// A text-to-image pipeline's tokenizer/ and text_encoder/ from bytes, as a browser loads them:
// clipTextModelFromBytes builds what loadCLIPTextModel builds (same τ_θ(prompt)), a bad config
// is an error naming it, and checkedTextConditioning refuses an encoder that does not fit the
// tokenizer or the denoiser, naming the file.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { parseTokenizer } from '../../src/data/tokenizer.js';
import { loadTextConditioning } from '../../src/diffusion/text-conditioning.js';
import { checkedTextConditioning } from '../../src/diffusion/text-source.js';
import { cpuBackend, setDefaultBackend } from '../../src/engine/index.js';
import { clipTextModelFromBytes } from '../../src/nn/models/index.js';

const cpu = setDefaultBackend(cpuBackend());
const DIR = 'models/mnist-text';
const read = (p: string): Promise<Buffer> => readFile(join(DIR, p));

const tokenizer = parseTokenizer(
  await readFile(join(DIR, 'tokenizer/tokenizer.json'), 'utf8'),
  await readFile(join(DIR, 'tokenizer/tokenizer_config.json'), 'utf8'),
  `${DIR}/tokenizer`,
);
const configBytes = await read('text_encoder/config.json');
const weights = await read('text_encoder/model.safetensors');

void describe('text conditioning from bytes', () => {
  void test('clipTextModelFromBytes encodes prompts as the folder loader does', async () => {
    const encoder = await clipTextModelFromBytes(configBytes, weights, `${DIR}/text_encoder`);
    const fromBytes = checkedTextConditioning({
      tokenizer,
      encoder,
      crossAttentionDim: encoder.config.hidden_size,
      hasNull: true,
      encoderConfig: `${DIR}/text_encoder/config.json`,
      tokenizerDir: `${DIR}/tokenizer`,
    });
    const fromFiles = await loadTextConditioning({
      encoderDir: join(DIR, 'text_encoder'),
      tokenizerDir: join(DIR, 'tokenizer'),
      crossAttentionDim: encoder.config.hidden_size,
      hasNull: true,
    });
    const prompts = ['a handwritten seven', '', 'the digit two'];
    const a = fromBytes.encode(prompts, cpu);
    const b = fromFiles.encode(prompts, cpu);
    assert.deepEqual(a.encoderHiddenStates!.shape, b.encoderHiddenStates!.shape);
    assert.deepEqual(a.encoderHiddenStates!.dataSync(), b.encoderHiddenStates!.dataSync());
    assert.deepEqual(a.encoderAttentionMask!.dataSync(), b.encoderAttentionMask!.dataSync());
  });

  void test('a bad config.json is an error naming it', async () => {
    const bad = new TextEncoder().encode('{"hidden_size": "wide"}');
    await assert.rejects(
      clipTextModelFromBytes(bad, weights, 'http://x/text_encoder'),
      /http:\/\/x\/text_encoder\/config\.json.*hidden_size/,
    );
    await assert.rejects(
      clipTextModelFromBytes(configBytes, weights.subarray(0, 100), 'http://x/text_encoder'),
      /http:\/\/x\/text_encoder\/model\.safetensors/,
    );
  });

  void test('an encoder that does not fit the denoiser or the tokenizer is refused', async () => {
    const encoder = await clipTextModelFromBytes(configBytes, weights, `${DIR}/text_encoder`);
    const opts = {
      tokenizer,
      encoder,
      hasNull: true,
      encoderConfig: 'u/text_encoder/config.json',
      tokenizerDir: 'u/tokenizer',
    };
    const width = encoder.config.hidden_size;
    assert.throws(
      () => checkedTextConditioning({ ...opts, crossAttentionDim: width + 1 }),
      new RegExp(
        `^ConditionError: u/text_encoder/config\\.json: hidden_size ${width} does not match`,
      ),
    );
    const small = parseTokenizer(
      JSON.stringify({
        ...JSON.parse(tokenizer.tokenizerJson()),
        model: {
          type: 'WordLevel',
          vocab: Object.fromEntries(tokenizer.vocab.slice(0, 6).map((w, i) => [w, i])),
          unk_token: '<|unk|>',
        },
      }),
      tokenizer.tokenizerConfigJson(),
      'u/tokenizer',
    );
    assert.throws(
      () => checkedTextConditioning({ ...opts, tokenizer: small, crossAttentionDim: width }),
      /u\/text_encoder\/config\.json: vocab_size \d+ does not match the tokenizer's 6 tokens \(u\/tokenizer\)/,
    );
  });
});
