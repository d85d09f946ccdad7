// Models from bytes, the file-free path a browser takes: serializeModule writes the bytes that
// saveModel writes to disk, and modelFromBytes / loadModuleFromBytes read them back as loadModel
// reads a folder; bad bytes are errors naming their source and change nothing.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { Generator, randn } from '../../../src/engine/index.js';
import { loadModuleFromBytes, serializeModule } from '../../../src/nn/state-dict.js';
import { ConfigError } from '../../../src/nn/models/config.js';
import {
  CONFIG_NAME,
  createModel,
  modelFromBytes,
  WEIGHTS_NAME,
} from '../../../src/nn/models/create.js';
import { loadModel, saveModel } from '../../../src/nn/models/io.js';
import { UNet2DModel } from '../../../src/nn/models/unet-2d.js';

const tmp = await mkdtemp(join(tmpdir(), 'sumi-create-'));
after(() => rm(tmp, { recursive: true, force: true }));

const tiny = {
  _class_name: 'UNet2DModel',
  sample_size: 8,
  in_channels: 1,
  out_channels: 1,
  block_out_channels: [8, 16],
  down_block_types: ['DownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'UpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
};

const utf8 = new TextEncoder();

void describe('models from bytes', () => {
  void it('serializeModule writes the bytes saveModel writes; modelFromBytes reads them back', async () => {
    const m = createModel(tiny, { generator: new Generator(3) });
    const dir = join(tmp, 'unet');
    await saveModel(m, dir);
    const weights = await serializeModule(m);
    assert.deepEqual(weights, new Uint8Array(await readFile(join(dir, WEIGHTS_NAME))));

    const back = await modelFromBytes(utf8.encode(m.configJson()), weights, '/models/tiny/unet');
    assert.ok(back instanceof UNet2DModel, back.className);
    assert.equal(back.training, false, 'in eval mode, as from loadModel');
    const disk = await loadModel(dir, { as: UNet2DModel });
    const x = randn([2, 1, 8, 8], { generator: new Generator(1) });
    assert.deepEqual([...back.forward(x, 5).dataSync()], [...disk.forward(x, 5).dataSync()]);
  });

  void it('bad bytes are errors naming the source; the module is left as it was', async () => {
    const config = utf8.encode(JSON.stringify(tiny));
    const m = createModel(tiny, { generator: new Generator(4) });
    const weights = await serializeModule(m);
    await assert.rejects(
      modelFromBytes(utf8.encode('{"_class_name": '), weights, '/models/x'),
      (e: Error) => e instanceof ConfigError && e.message.startsWith(`/models/x/${CONFIG_NAME}: `),
    );
    await assert.rejects(
      modelFromBytes(config, weights.subarray(0, weights.length - 4), '/models/x'),
      new RegExp(`^\\w*Error: /models/x/${WEIGHTS_NAME}: `),
    );

    const other = createModel(tiny, { generator: new Generator(5) });
    const before = other.parameters().map((p) => [...p.dataSync()]);
    const wider = await serializeModule(
      createModel({ ...tiny, block_out_channels: [8, 24] }, { generator: new Generator(6) }),
    );
    await assert.rejects(
      loadModuleFromBytes(other, wider, 'wider.safetensors'),
      /wider\.safetensors/,
    );
    assert.deepEqual(
      other.parameters().map((p) => [...p.dataSync()]),
      before,
    );
    await loadModuleFromBytes(other, weights, 'm.safetensors');
    assert.deepEqual(
      other.parameters().map((p) => [...p.dataSync()]),
      m.parameters().map((p) => [...p.dataSync()]),
    );
  });
});
