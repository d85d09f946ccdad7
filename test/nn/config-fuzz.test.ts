/**
 * Fuzzing config.json loading (diffusers' model configs and transformers' CLIPTextConfig): any
 * bytes, any JSON value for any key, deep nesting: a ConfigError naming the file, or a config
 * that every later check accepts, never another exception.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import fc from 'fast-check';

import {
  AUTOENCODER_KL_SCHEMA,
  ConfigError,
  createModel,
  ENCODER_CLASSIFIER_SCHEMA,
  modelClassNames,
  parseConfigJson,
  parseModelConfig,
  resolveCLIPTextConfig,
  CLIP_TEXT_SCHEMA,
  UNET_2D_CONDITION_SCHEMA,
  UNET_2D_SCHEMA,
  VQ_MODEL_SCHEMA,
} from '../../src/nn/models/index.js';
import {
  applyEdits,
  byteEdits,
  deepJson,
  FUZZ_RUNS,
  fuzzTest,
  jsonText,
  parsedOrRejected,
} from '../fuzz.js';

const PATH = 'fuzz/config.json';
/** Errors name the file, after the class name when the schema check finds the problem. */
const NAMED = /(?:\w+ )?fuzz\/config\.json: /;

const bytesOf = (v: unknown): Uint8Array => new TextEncoder().encode(jsonText(v));

const KEYS: Record<string, string[]> = {
  UNet2DModel: Object.keys(UNET_2D_SCHEMA.defaults),
  UNet2DConditionModel: Object.keys(UNET_2D_CONDITION_SCHEMA.defaults),
  AutoencoderKL: Object.keys(AUTOENCODER_KL_SCHEMA.defaults),
  VQModel: Object.keys(VQ_MODEL_SCHEMA.defaults),
  EncoderClassifierModel: Object.keys(ENCODER_CLASSIFIER_SCHEMA.defaults),
  CLIPTextModel: Object.keys(CLIP_TEXT_SCHEMA.defaults),
};

/** Values that have broken loaders: deep nesting, numbers JSON.stringify writes oddly, keys. */
const oddValue = fc.oneof(
  deepJson,
  fc.constantFrom(1e308, -0, 2 ** 53 + 2, -1, 0.5, '', '__proto__', [], {}, null, true),
  fc.array(fc.integer({ min: -2, max: 64 }), { maxLength: 5 }),
  fc.array(fc.constantFrom('DownBlock2D', 'AttnDownBlock2D', 'UpBlock2D', 'X'), { maxLength: 4 }),
);
const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), oddValue);

/** A config: a class and some of its keys (or others) set to anything. */
const config = fc
  .record({
    className: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...modelClassNames, 'CLIPTextModel') },
      {
        weight: 1,
        arbitrary: fc.oneof(
          fc.string({ maxLength: 12 }),
          fc.constantFrom('constructor', '__proto__'),
        ),
      },
    ),
    edits: fc.array(
      fc.tuple(
        fc.oneof(
          { weight: 5, arbitrary: fc.nat() },
          { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
        ),
        anyValue,
      ),
      { maxLength: 3 },
    ),
    meta: fc.option(
      fc.tuple(fc.constantFrom('_class_name', '_diffusers_version', '__proto__'), anyValue),
      {
        freq: 4,
      },
    ),
  })
  .map(({ className, edits, meta }) => {
    const keys = KEYS[className] ?? KEYS.UNet2DModel!;
    const json: Record<string, unknown> = { _class_name: className };
    for (const [key, value] of edits) {
      Object.defineProperty(json, typeof key === 'number' ? keys[key % keys.length]! : key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    if (meta !== null) {
      Object.defineProperty(json, meta[0], {
        value: meta[1],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return json;
  });

/** The loader for a config's class: diffusers' models, or transformers' CLIP text encoder. */
function load(bytes: Uint8Array): unknown {
  const json = parseConfigJson(bytes, PATH);
  if (json._class_name === 'CLIPTextModel') {
    const rest = { ...json };
    delete rest._class_name; // transformers' configs have no class name key
    return resolveCLIPTextConfig(rest, PATH);
  }
  return parseModelConfig(bytes, PATH).config;
}

void describe('config.json loading', () => {
  fuzzTest('config: any key of any class set to any JSON value', config, (json) => {
    const resolved = parsedOrRejected(() => load(bytesOf(json)), ConfigError, NAMED);
    if (resolved !== null && json._class_name !== 'CLIPTextModel') {
      // What was accepted is accepted again as written out (defaults filled in).
      const again = parseModelConfig(
        bytesOf({ ...(resolved as object), _class_name: json._class_name }),
        PATH,
      );
      assert.deepEqual(again.config, resolved);
    }
  });

  fuzzTest(
    'config: any bytes, and edited bytes of a valid file',
    fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 100 }).map((s) => new TextEncoder().encode(s)),
      fc
        .tuple(fc.constantFrom(...modelClassNames), byteEdits)
        .map(([c, edits]) => applyEdits(bytesOf({ _class_name: c, sample_size: 8 }), edits)),
    ),
    (bytes) => {
      parsedOrRejected(() => load(bytes), ConfigError, NAMED);
    },
  );

  /** Small U-Nets: n blocks of consistent sizes, sometimes with one value made wrong. */
  const smallUNet = fc.integer({ min: 1, max: 3 }).chain((n) =>
    fc.record({
      block_out_channels: fc.array(fc.constantFrom(2, 4, 6, 8), { minLength: n, maxLength: n }),
      down_block_types: fc.array(fc.constantFrom('DownBlock2D', 'AttnDownBlock2D'), {
        minLength: n,
        maxLength: n,
      }),
      up_block_types: fc.array(fc.constantFrom('UpBlock2D', 'AttnUpBlock2D'), {
        minLength: n,
        maxLength: n,
      }),
      layers_per_block: fc.integer({ min: 0, max: 2 }),
      norm_num_groups: fc.constantFrom(1, 2, 4),
      attention_head_dim: fc.constantFrom(null, 1, 2, 4),
      in_channels: fc.integer({ min: 1, max: 3 }),
      out_channels: fc.integer({ min: 1, max: 3 }),
      num_class_embeds: fc.constantFrom(null, 3),
      sample_size: fc.constantFrom(4, 8),
    }),
  );
  const wrong = fc.option(
    fc.tuple(
      fc.constantFrom(...Object.keys(UNET_2D_SCHEMA.defaults)),
      fc.oneof(
        fc.integer({ min: -1, max: 9 }),
        fc.constantFrom(0.5, null, '4', [], [0], [3, 3, 3, 3], ['DownBlock2D'], 'silu', 'fourier'),
      ),
    ),
    { freq: 2 },
  );
  fuzzTest(
    'config: a small UNet2DModel with edited sizes builds or is refused',
    fc.tuple(smallUNet, wrong),
    ([sizes, edit]) => {
      const json: Record<string, unknown> = { _class_name: 'UNet2DModel', ...sizes };
      if (edit !== null) json[edit[0]] = edit[1];
      const named = /UNet2DModel config: /;
      const model = parsedOrRejected(() => createModel(json), ConfigError, named);
      if (model !== null) assert.ok(model.numParameters() > 0, 'a model with parameters');
    },
    Math.max(100, Math.round(FUZZ_RUNS / 5)), // each case builds a model
  );
});
