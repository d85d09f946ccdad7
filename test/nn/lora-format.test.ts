import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, randn, type Tensor, tidy } from '../../src/engine/index.js';
import { assertClose, maxAbsDiff } from '../engine/testing.js';
import { createLoraNetwork, injectLora, LoraError, type LoraNetwork } from '../../src/nn/lora.js';
import {
  LORA_METADATA_KEY,
  loraNetworkFromFile,
  parseLoraFile,
  serializeLora,
} from '../../src/nn/lora-format.js';
import { UNet2DModel } from '../../src/nn/models/unet-2d.js';
import { TINY_UNET } from './models/testing.js';
import {
  parseSafetensors,
  serializeSafetensors,
  type TensorToWrite,
} from '../../src/nn/safetensors.js';

let seed = 900;
const rnd = (shape: readonly number[]): Tensor => randn(shape, { seed: seed++ });

/** Two models with the same weights (the second loads the first's state dict). */
async function twins(): Promise<[UNet2DModel, UNet2DModel]> {
  const a = new UNet2DModel(TINY_UNET);
  const b = new UNet2DModel(TINY_UNET);
  await b.loadStateDict(a.stateDict());
  return [a, b];
}

function randomizeB(net: LoraNetwork): void {
  for (const a of net.adapters.values()) {
    const t = tidy(() => rnd(a.loraB.weight.shape).mul(0.5));
    a.loraB.weight.assign(t);
    t.dispose();
  }
}

const parse = (bytes: Uint8Array): ReturnType<typeof parseSafetensors> =>
  parseSafetensors(bytes, 'lora.safetensors');

/** A file of the given named arrays (F32). */
function fileOf(
  entries: Record<string, [number[], number[] | Float32Array]>,
  meta = {},
): Uint8Array {
  const tensors: TensorToWrite[] = Object.entries(entries).map(([name, [shape, v]]) => ({
    name,
    shape,
    data: Float32Array.from(v),
  }));
  return serializeSafetensors(tensors, { format: 'pt', ...meta });
}

const filled = (n: number, v = 0.1): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => v * Math.sin(i + 1));

void describe('LoRA files (diffusers pytorch_lora_weights.safetensors)', () => {
  void it('write the peft layout under unet. with α in lora_adapter_metadata, and read it back', async () => {
    const [m1, m2] = await twins();
    const net = createLoraNetwork(
      m1,
      [
        { path: 'down_blocks.1.attentions.0.to_q', rank: 4, alpha: 6 },
        { path: 'mid_block.attentions.0.to_out.0', rank: 4, alpha: 6 },
        { path: 'conv_in', rank: 2, alpha: 1 },
      ],
      { generator: new Generator(3) },
    ).attach(1);
    randomizeB(net);
    const bytes = await serializeLora(net);
    const file = parse(bytes);
    assert.deepEqual([...file.tensors.keys()].sort(), [
      'unet.conv_in.lora_A.weight',
      'unet.conv_in.lora_B.weight',
      'unet.down_blocks.1.attentions.0.to_q.lora_A.weight',
      'unet.down_blocks.1.attentions.0.to_q.lora_B.weight',
      'unet.mid_block.attentions.0.to_out.0.lora_A.weight',
      'unet.mid_block.attentions.0.to_out.0.lora_B.weight',
    ]);
    assert.deepEqual(file.tensors.get('unet.conv_in.lora_A.weight')!.shape, [2, 1, 3, 3]);
    assert.deepEqual(file.tensors.get('unet.conv_in.lora_B.weight')!.shape, [8, 2, 1, 1]);
    const meta = JSON.parse(file.metadata[LORA_METADATA_KEY]!) as Record<string, unknown>;
    assert.equal(file.metadata.format, 'pt');
    assert.equal(meta['unet.r'], 4);
    assert.equal(meta['unet.lora_alpha'], 6);
    assert.deepEqual(meta['unet.rank_pattern'], { conv_in: 2 });
    assert.deepEqual(meta['unet.alpha_pattern'], { conv_in: 1 });
    assert.deepEqual(meta['unet.target_modules'], [
      'down_blocks.1.attentions.0.to_q',
      'mid_block.attentions.0.to_out.0',
      'conv_in',
    ]);
    assert.ok(
      Object.keys(meta).every((k) => k.startsWith('unet.')),
      'every LoraConfig field carries the component prefix',
    );

    const back = await loraNetworkFromFile(m2, file, 'lora.safetensors');
    assert.deepEqual(
      [...back.adapters].map(([p, a]) => [p, a.rank, a.alpha]),
      [
        ['conv_in', 2, 1],
        ['down_blocks.1.attentions.0.to_q', 4, 6],
        ['mid_block.attentions.0.to_out.0', 4, 6],
      ],
    );
    back.attach(1);
    const x = rnd([2, 1, 8, 8]);
    const y1 = m1.forward(x, [5, 900]);
    assertClose(m2.forward(x, [5, 900]), y1, { rtol: 0, atol: 0 });
    back.detach();
    const plain = m2.forward(x, [5, 900]);
    const moved = maxAbsDiff(plain, y1);
    assert.ok(moved > 1e-3, `the adapters change the output (max ${moved})`);
  });

  void it('store F16 on request (within half-precision rounding)', async () => {
    const m = new UNet2DModel(TINY_UNET);
    const net = injectLora(m, { rank: 2, generator: new Generator(1) });
    randomizeB(net);
    const file = parse(await serializeLora(net, { dtype: 'F16' }));
    const e = file.tensors.get('unet.mid_block.attentions.0.to_v.lora_B.weight')!;
    assert.equal(e.dtype, 'F16');
    const want = net.adapters.get('mid_block.attentions.0.to_v')!.loraB.weight;
    assertClose(e.data, want.dataSync(), { rtol: 2 ** -11, atol: 1e-7 });
  });

  void it("read diffusers' lora.down/up layout with .alpha keys, and old attention-processor keys", async () => {
    const [m1, m2] = await twins();
    const down = filled(3 * 16);
    const up = filled(16 * 3, 0.2);
    // The same adapter three ways: peft with metadata, diffusers with an alpha key, old processor keys.
    const peft = fileOf(
      {
        'unet.up_blocks.0.attentions.1.to_out.0.lora_A.weight': [[3, 16], down],
        'unet.up_blocks.0.attentions.1.to_out.0.lora_B.weight': [[16, 3], up],
      },
      { [LORA_METADATA_KEY]: JSON.stringify({ 'unet.r': 3, 'unet.lora_alpha': 1.5 }) },
    );
    const diffusers = fileOf({
      'unet.up_blocks.0.attentions.1.to_out.0.lora.down.weight': [[3, 16], down],
      'unet.up_blocks.0.attentions.1.to_out.0.lora.up.weight': [[16, 3], up],
      'unet.up_blocks.0.attentions.1.to_out.0.alpha': [[], [1.5]],
    });
    const old = fileOf({
      'up_blocks.0.attentions.1.processor.to_out_lora.down.weight': [[3, 16], down],
      'up_blocks.0.attentions.1.processor.to_out_lora.up.weight': [[16, 3], up],
    });
    const p = parseLoraFile(parse(diffusers), 'd');
    assert.equal(p.layout, 'diffusers');
    assert.equal(p.alphaFrom, 'alpha-keys');
    const o = parseLoraFile(parse(old), 'o');
    assert.equal(o.layout, 'diffusers-attn-processor');
    assert.equal(o.prefix, null);
    assert.deepEqual(
      o.adapters.map((a) => [a.path, a.rank, a.alpha]),
      [['up_blocks.0.attentions.1.to_out.0', 3, 3]],
    );
    const x = rnd([1, 1, 8, 8]);
    const outputs: Tensor[] = [];
    for (const [model, bytes] of [
      [m1, peft],
      [m2, diffusers],
    ] as const) {
      const net = (await loraNetworkFromFile(model, parse(bytes), 'f')).attach();
      assert.equal(net.adapters.get('up_blocks.0.attentions.1.to_out.0')!.alpha, 1.5);
      outputs.push(model.forward(x, 10));
      net.detach();
    }
    assertClose(outputs[1]!, outputs[0]!, { rtol: 0, atol: 0 });
  });

  void it('name the keys that match no layer, mis-shaped keys and rank mismatches in one line', async () => {
    const m = new UNet2DModel(TINY_UNET);
    const fails = async (bytes: Uint8Array, re: RegExp): Promise<void> => {
      await assert.rejects(
        () => loraNetworkFromFile(m, parse(bytes), 'bad.safetensors'),
        (e: unknown) => e instanceof LoraError && re.test(e.message) && !e.message.includes('\n'),
      );
    };
    await fails(
      fileOf({
        'unet.down_blocks.1.attentions.0.to_z.lora_A.weight': [[2, 16], filled(32)],
        'unet.down_blocks.1.attentions.0.to_z.lora_B.weight': [[16, 2], filled(32)],
      }),
      /^bad\.safetensors: 1 LoRA adapters match no Linear\/Conv2d layer of the model: unet\.down_blocks\.1\.attentions\.0\.to_z\.lora_A\.weight$/,
    );
    await fails(
      fileOf({
        'unet.mid_block.attentions.0.to_q.lora_A.weight': [[4, 16], filled(64)],
        'unet.mid_block.attentions.0.to_q.lora_B.weight': [[16, 3], filled(48)],
      }),
      /rank mismatch: mid_block\.attentions\.0\.to_q: A \[4, 16\] vs B \[16, 3\]/,
    );
    await fails(
      fileOf(
        {
          'unet.mid_block.attentions.0.to_q.lora_A.weight': [[4, 16], filled(64)],
          'unet.mid_block.attentions.0.to_q.lora_B.weight': [[16, 4], filled(64)],
        },
        { [LORA_METADATA_KEY]: JSON.stringify({ 'unet.r': 8, 'unet.lora_alpha': 8 }) },
      ),
      /rank mismatch: mid_block\.attentions\.0\.to_q: the metadata says r = 8, A is \[4, 16\]/,
    );
    await fails(
      fileOf({
        'unet.mid_block.attentions.0.to_k.lora_A.weight': [[2, 8], filled(16)],
        'unet.mid_block.attentions.0.to_k.lora_B.weight': [[16, 2], filled(32)],
      }),
      /do not fit the model: unet\.mid_block\.attentions\.0\.to_k\.lora_A\.weight is \[2, 8\], expected \[2, 16\]/,
    );
    await fails(
      fileOf({
        'unet.conv_in.lora_A.weight': [[2, 1, 3, 3], filled(18)],
        'unet.conv_in.lora_B.weight': [[8, 2, 1, 1], filled(16)],
        'text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight': [
          [2, 4],
          filled(8),
        ],
      }),
      /1 keys adapt another component than the denoiser \(unet\), which is not supported: text_encoder\./,
    );
    await fails(
      fileOf({ 'unet.conv_in.lora_A.weight': [[2, 1, 3, 3], filled(18)] }),
      /unpaired LoRA weights: conv_in \(no B \/ up weight\)/,
    );
    await fails(
      fileOf({ 'unet.conv_in.weight': [[8, 1, 3, 3], filled(72)] }),
      /1 keys are not LoRA weights .*: unet\.conv_in\.weight/,
    );
  });
});
