import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Generator, randn } from '../../../src/engine/index.js';
import { readSafetensors } from '../../../src/nn/safetensors-fs.js';
import { AutoencoderKL } from '../../../src/nn/models/autoencoder-kl.js';
import { ConfigError } from '../../../src/nn/models/config.js';
import { createModel, parseModelConfig, WEIGHTS_NAME } from '../../../src/nn/models/create.js';
import { loadModel, saveModel } from '../../../src/nn/models/io.js';
import { UNet2DConditionModel } from '../../../src/nn/models/unet-2d-condition.js';
import { UNet2DModel } from '../../../src/nn/models/unet-2d.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, '../../../../shared/fixtures/diffusers');
const tmp = await mkdtemp(join(tmpdir(), 'sumi-models-'));
after(() => rm(tmp, { recursive: true, force: true }));

const tiny = {
  _class_name: 'UNet2DModel',
  block_out_channels: [8, 16],
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  in_channels: 1,
  out_channels: 1,
};

void describe('saveModel / loadModel', () => {
  void it('writes what diffusers writes and reads it back to the same function', async () => {
    const m = createModel(tiny, { generator: new Generator(4) });
    const dir = join(tmp, 'unet');
    await saveModel(m, dir);
    assert.deepEqual((await readdir(dir)).sort(), ['config.json', WEIGHTS_NAME]);
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(Object.keys(cfg)[0], '_class_name');
    assert.equal(cfg.norm_num_groups, 4);
    const file = await readSafetensors(join(dir, WEIGHTS_NAME));
    assert.deepEqual(file.metadata, { format: 'pt' });
    assert.ok(
      [...file.tensors.values()].every((e) => e.dtype === 'F32'),
      'every tensor saved as F32',
    );
    assert.equal(file.tensors.size, m.namedParameters().length);

    const back = await loadModel(dir, { as: UNet2DModel });
    assert.equal(back.training, false, 'loaded in eval mode');
    const x = randn([1, 1, 4, 4], { generator: new Generator(1) });
    assert.deepEqual(
      [...back.forward(x, 3).dataSync()],
      [...(m as UNet2DModel).forward(x, 3).dataSync()],
    );
    const f64 = await loadModel(dir, { dtype: 'float64' });
    assert.equal(f64.parameters()[0]!.dtype, 'float64');
  });

  void it('overwrites atomically and rejects a wrong class or a missing weights file', async () => {
    const dir = join(tmp, 'again');
    await saveModel(createModel(tiny), dir);
    await saveModel(createModel(tiny), dir);
    assert.deepEqual((await readdir(dir)).length, 2, 'no temporary files are left');
    await assert.rejects(
      loadModel(dir, { as: AutoencoderKL }),
      /expected a AutoencoderKL, found UNet2DModel/,
    );
    const empty = join(tmp, 'empty');
    await saveModel(createModel(tiny), empty);
    await rm(join(empty, WEIGHTS_NAME));
    await assert.rejects(loadModel(empty), /no diffusion_pytorch_model.safetensors/);
    await writeFile(join(empty, 'config.json'), '{"_class_name": "UNet1DModel"}');
    await assert.rejects(loadModel(empty), /unsupported model class 'UNet1DModel'/);
  });

  void it('reads a folder diffusers wrote', async () => {
    assert.ok(existsSync(join(FIXTURES, 'unet2d_condition')), `no fixtures at ${FIXTURES}`);
    const m = await loadModel(join(FIXTURES, 'unet2d_condition'), { as: UNet2DConditionModel });
    assert.equal(m.numParameters(), 792964);
    assert.equal(m.config.cross_attention_dim, 32);
  });
});

void describe('createModel', () => {
  void it('needs a class name', () => {
    assert.throws(() => createModel({}), /no _class_name/);
    assert.ok(
      createModel({}, { className: 'VQModel' }).className === 'VQModel',
      'the class name comes from the options',
    );
  });
});

void describe('parseModelConfig', () => {
  const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
  const refused = (text: string | Uint8Array, message: RegExp): void => {
    assert.throws(
      () => parseModelConfig(typeof text === 'string' ? bytes(text) : text, 'm/config.json'),
      (e: Error) => e instanceof ConfigError && message.test(e.message),
    );
  };

  void it('checks a config against its class without building the model', () => {
    const { className, config } = parseModelConfig(bytes(JSON.stringify(tiny)), 'm/config.json');
    assert.equal(className, 'UNet2DModel');
    assert.deepEqual(config.block_out_channels, [8, 16]);
    assert.equal(config.act_fn, 'silu', 'defaults filled in');
  });

  void it('refuses what is not a config, naming the file', () => {
    refused(Uint8Array.from([0x7b, 0xff, 0x7d]), /^m\/config\.json: not UTF-8 text/);
    refused('{"_class_name": ', /^m\/config\.json: not valid JSON/);
    refused('[1]', /^m\/config\.json: expected a JSON object/);
    refused('{}', /^m\/config\.json: _class_name: missing/);
    refused('{"_class_name": "UNet1DModel"}', /unsupported model class 'UNet1DModel'/);
    refused(
      '{"_class_name": "UNet2DModel", "in_channels": 0}',
      /^UNet2DModel m\/config\.json: in_channels/,
    );
    // Deep enough that writing the value into an error message would overflow the stack.
    const deep = `${'['.repeat(10000)}1${']'.repeat(10000)}`;
    refused(
      `{"_class_name": "UNet2DModel", "sample_size": ${deep}}`,
      /nested more than 32 levels deep/,
    );
  });

  void it('a size a layer refuses while building is a ConfigError too', () => {
    assert.throws(
      () => createModel({ ...tiny, attn_norm_num_groups: 3 }),
      (e: Error) =>
        e instanceof ConfigError &&
        /^UNet2DModel config: GroupNorm: 16 channels are not divisible into 3 groups/.test(
          e.message,
        ),
    );
  });
});
