import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  abs,
  add,
  Generator,
  mean,
  square,
  sum,
  tensor,
  type Tensor,
} from '../../../src/engine/index.js';
import { assertClose } from '../../engine/testing.js';
import { loadTensors, saveTensors } from '../../../src/nn/state-io.js';
import {
  CLIP_TEXT_WEIGHTS_NAME,
  CLIPTextModel,
  type CLIPTextModelInput,
  quickGelu,
  resolveCLIPTextConfig,
} from '../../../src/nn/models/clip-text.js';
import { loadCLIPTextModel, saveCLIPTextModel } from '../../../src/nn/models/clip-text-fs.js';

const FIXTURE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../test/fixtures/clip-text',
);

const tiny: CLIPTextModelInput = {
  vocab_size: 20,
  hidden_size: 16,
  intermediate_size: 24,
  projection_dim: 16,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 8,
  pad_token_id: 0,
  bos_token_id: 2,
  eos_token_id: 3,
};

/** [B, L] int32 ids and mask: start, words, end, padding. */
function batch(rows: readonly (readonly number[])[], l: number): { ids: Tensor; mask: Tensor } {
  const ids = new Int32Array(rows.length * l);
  const mask = new Int32Array(rows.length * l);
  rows.forEach((words, b) => {
    const r = [2, ...words, 3];
    ids.set(r, b * l);
    mask.fill(1, b * l, b * l + r.length);
  });
  const shape = [rows.length, l];
  return { ids: tensor(ids, shape), mask: tensor(mask, shape) };
}

const tmp: string[] = [];
after(async () => {
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sumi-clip-'));
  tmp.push(d);
  return d;
}

void describe('CLIPTextModel', () => {
  void it('matches the PyTorch reference (float64 to 1e-10, float32 to 1e-5)', async () => {
    const io = await loadTensors(join(FIXTURE, 'io.safetensors'));
    const ids = io.get('input_ids')!;
    const mask = io.get('attention_mask')!;
    assert.equal(ids.dtype, 'int32', 'input_ids are int32');
    for (const [dtype, tol] of [
      ['float64', 1e-10],
      ['float32', 1e-5],
    ] as const) {
      const m = await loadCLIPTextModel(FIXTURE, { dtype });
      const out = m.forward(ids, mask);
      assert.equal(out.lastHiddenState.dtype, dtype);
      assertClose(
        out.lastHiddenState,
        io.get('last_hidden_state')!,
        { rtol: tol, atol: tol },
        `last_hidden_state ${dtype}`,
      );
      assertClose(
        out.pooledOutput,
        io.get('pooler_output')!,
        { rtol: tol, atol: tol },
        `pooler_output ${dtype}`,
      );
    }
  });

  void it("has transformers' parameter names and shapes", () => {
    const m = new CLIPTextModel(tiny);
    const shapes = new Map(m.namedParameters().map(([n, p]) => [n, p.shape]));
    const l = 'text_model.encoder.layers.1';
    assert.deepEqual(shapes.get('text_model.embeddings.token_embedding.weight'), [20, 16]);
    assert.deepEqual(shapes.get('text_model.embeddings.position_embedding.weight'), [8, 16]);
    assert.deepEqual(shapes.get(`${l}.self_attn.q_proj.weight`), [16, 16]);
    assert.deepEqual(shapes.get(`${l}.self_attn.out_proj.bias`), [16]);
    assert.deepEqual(shapes.get(`${l}.mlp.fc1.weight`), [24, 16]);
    assert.deepEqual(shapes.get(`${l}.mlp.fc2.weight`), [16, 24]);
    assert.deepEqual(shapes.get(`${l}.layer_norm2.bias`), [16]);
    assert.deepEqual(shapes.get('text_model.final_layer_norm.weight'), [16]);
    // 2 embeddings + 2 layers × (4 projections × 2 + 2 norms × 2 + 2 fcs × 2) + 2
    assert.equal(shapes.size, 2 + 2 * 16 + 2);
  });

  void it('initialises from a seeded generator as transformers does', () => {
    const a = new CLIPTextModel(tiny, { generator: new Generator(7) });
    const b = new CLIPTextModel(tiny, { generator: new Generator(7) });
    const c = new CLIPTextModel(tiny, { generator: new Generator(8) });
    const w = (m: CLIPTextModel) => m.textModel.encoder.layers.at(0).mlp.fc1.weight;
    assertClose(w(a), w(b), { rtol: 0, atol: 0 }, 'same seed, same weights');
    assert.notDeepEqual(w(a).dataSync(), w(c).dataSync(), 'another seed, other weights');
    const std = (t: Tensor) => Math.sqrt(mean(square(t)).itemSync());
    // N(0, (2·16)^-1/2) for fc1, N(0, 0.02) for the token embedding, zero biases
    assert.ok(Math.abs(std(w(a)) - 32 ** -0.5) < 0.03, `fc1 std ${std(w(a))}`);
    const tok = a.textModel.embeddings.tokenEmbedding.weight;
    assert.ok(Math.abs(std(tok) - 0.02) < 0.003, `token embedding std ${std(tok)}`);
    assert.equal(sum(abs(a.textModel.encoder.layers.at(1).selfAttn.qProj.bias!)).itemSync(), 0);
  });

  void it('is causal, ignores padded positions, and pools at the first end token', () => {
    const m = new CLIPTextModel(tiny, { generator: new Generator(1) });
    const l = 8;
    const a = batch([[5, 6, 7, 8]], l);
    const b = batch([[5, 6, 7, 9]], l);
    const oa = m.forward(a.ids, a.mask);
    const ob = m.forward(b.ids, b.mask);
    const row = (t: Tensor, i: number) => Array.from(t.dataSync().slice(i * 16, (i + 1) * 16));
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(row(oa.lastHiddenState, i), row(ob.lastHiddenState, i), `position ${i}`);
    }
    assert.notDeepEqual(row(oa.lastHiddenState, 4), row(ob.lastHiddenState, 4), 'position 4');
    // Other ids at padded positions (mask 0) change nothing before them.
    const ids = a.ids.dataSync().slice();
    ids[7] = 11;
    const oc = m.forward(tensor(ids, [1, l]), a.mask);
    for (let i = 0; i < 6; i++) {
      assert.deepEqual(row(oc.lastHiddenState, i), row(oa.lastHiddenState, i), `position ${i}`);
    }
    assert.deepEqual(Array.from(oa.pooledOutput.dataSync()), row(oa.lastHiddenState, 5));
    // Without a mask, padding is attended to (as in transformers without attention_mask).
    const od = m.forward(a.ids);
    assert.deepEqual(row(od.lastHiddenState, 5), row(oa.lastHiddenState, 5), 'causal only');
  });

  void it('pools at the largest id for eos_token_id 2, as transformers does for old configs', () => {
    const m = new CLIPTextModel({ ...tiny, bos_token_id: 1, eos_token_id: 2 });
    const ids = tensor(new Int32Array([1, 4, 17, 5, 2, 0, 0, 0]), [1, 8]);
    const out = m.forward(ids);
    const row = out.lastHiddenState.dataSync().slice(2 * 16, 3 * 16);
    assert.deepEqual(Array.from(out.pooledOutput.dataSync()), Array.from(row));
  });

  void it('sends gradients to every parameter', () => {
    const m = new CLIPTextModel(tiny, { generator: new Generator(2) });
    const { ids, mask } = batch(
      [
        [4, 5, 6, 7, 8, 9],
        [10, 11],
      ],
      8,
    );
    const out = m.forward(ids, mask);
    add(mean(square(out.lastHiddenState)), mean(square(out.pooledOutput))).backward();
    for (const [name, p] of m.namedParameters()) {
      assert.ok(p.grad !== null, `${name} has a gradient`);
      assert.ok(sum(abs(p.grad)).itemSync() > 0, `${name}'s gradient is not all zero`);
    }
  });

  void it('drops attention probabilities only in training mode', () => {
    const m = new CLIPTextModel(
      { ...tiny, attention_dropout: 0.5 },
      { generator: new Generator(4) },
    );
    const { ids, mask } = batch([[4, 5, 6]], 8);
    const train = m.train().forward(ids, mask).lastHiddenState.dataSync();
    const evalA = m.eval().forward(ids, mask).lastHiddenState.dataSync();
    const evalB = m.forward(ids, mask).lastHiddenState.dataSync();
    assert.deepEqual(evalA, evalB, 'eval mode is deterministic');
    assert.notDeepEqual(train, evalA, 'training mode drops');
  });

  void it('computes quick_gelu as x·σ(1.702x)', () => {
    const x = [-3, -0.5, 0, 0.5, 3];
    const y = x.map((v) => v / (1 + Math.exp(-1.702 * v)));
    assertClose(quickGelu(tensor(x, [5], { dtype: 'float64' })), y, { rtol: 1e-15, atol: 0 });
  });

  void it('saves and reloads to identical outputs, in the layout transformers reads', async () => {
    const m = new CLIPTextModel({ ...tiny, hidden_act: 'gelu' }, { generator: new Generator(3) });
    const dir = await tempDir();
    await saveCLIPTextModel(m, dir);
    const back = await loadCLIPTextModel(dir);
    const { ids, mask } = batch([[4, 5], [6]], 6);
    const a = m.eval().forward(ids, mask);
    const b = back.forward(ids, mask);
    assertClose(b.lastHiddenState, a.lastHiddenState, { rtol: 0, atol: 0 }, 'reloaded');
    assertClose(b.pooledOutput, a.pooledOutput, { rtol: 0, atol: 0 }, 'reloaded pooled');
    assert.deepEqual(back.config, m.config);
    const json = JSON.parse(m.configJson()) as Record<string, unknown>;
    assert.deepEqual(json.architectures, ['CLIPTextModel']);
    assert.equal(json.model_type, 'clip_text_model');
    assert.equal(json.torch_dtype, 'float32');
    assert.deepEqual(Object.keys(json), Object.keys(json).sort(), 'keys sorted');
    const sd = await loadTensors(join(dir, CLIP_TEXT_WEIGHTS_NAME));
    assert.deepEqual([...sd.keys()].sort(), [...m.stateDict().keys()].sort());
  });

  void it('skips the position_ids buffer older transformers saved', async () => {
    const dir = await tempDir();
    await copyFile(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
    const sd = await loadTensors(join(FIXTURE, CLIP_TEXT_WEIGHTS_NAME));
    sd.set(
      'text_model.embeddings.position_ids',
      tensor(
        Int32Array.from({ length: 12 }, (_, i) => i),
        [1, 12],
      ),
    );
    await saveTensors(join(dir, CLIP_TEXT_WEIGHTS_NAME), sd);
    const m = await loadCLIPTextModel(dir);
    assert.equal(m.config.hidden_size, 24);
  });

  void it('names what is wrong with a config', () => {
    const bad = (c: Record<string, unknown>, re: RegExp) =>
      assert.throws(() => new CLIPTextModel({ ...tiny, ...c }), re);
    bad({ hidden_size: 18 }, /hidden_size 18 is not divisible by num_attention_heads 4/);
    bad({ hidden_act: 'gelu_new' }, /hidden_act: "gelu_new" is not supported/);
    bad({ eos_token_id: 20 }, /eos_token_id: 20 is not below vocab_size 20/);
    bad({ hiden_size: 16 }, /hiden_size: unknown key/);
    bad({ model_type: 'clip' }, /model_type: "clip" is not supported/);
    bad({ architectures: ['CLIPTextModelWithProjection'] }, /architectures: expected/);
    bad({ num_hidden_layers: 0 }, /num_hidden_layers: expected an integer >= 1/);
    // transformers' provenance keys are read and dropped.
    const c = resolveCLIPTextConfig({
      ...tiny,
      transformers_version: '4.46.0',
      torch_dtype: 'float16',
    });
    assert.equal(c.hidden_size, 16);
    assert.ok(!('torch_dtype' in c), 'torch_dtype is not part of the config');
  });

  void it('rejects bad inputs and bad folders with the file named', async () => {
    const m = new CLIPTextModel(tiny);
    const { ids, mask } = batch([[4]], 8);
    assert.throws(() => m.forward(tensor(new Float32Array(8), [1, 8])), /must be int32 \[B, L\]/);
    assert.throws(() => m.forward(tensor(new Int32Array(9), [1, 9])), /sequence length 9/);
    assert.throws(() => m.forward(ids, tensor(new Int32Array(4), [1, 4])), /attentionMask/);
    assert.ok(m.forward(ids, mask), 'a good batch runs');

    const dir = await tempDir();
    await assert.rejects(loadCLIPTextModel(join(dir, 'nothing')), /config\.json/);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...tiny, hidden_size: 8 }));
    await assert.rejects(loadCLIPTextModel(dir), /no model\.safetensors/);
    await copyFile(join(FIXTURE, CLIP_TEXT_WEIGHTS_NAME), join(dir, CLIP_TEXT_WEIGHTS_NAME));
    await assert.rejects(
      loadCLIPTextModel(dir),
      (e: Error) =>
        e.message.includes(join(dir, CLIP_TEXT_WEIGHTS_NAME)) &&
        /mis-shaped: text_model\.embeddings\.token_embedding\.weight: expected \[20, 8\], found \[40, 24\]/.test(
          e.message,
        ),
    );
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...tiny, num_attention_heads: 5 }));
    await assert.rejects(loadCLIPTextModel(dir), (e: Error) =>
      e.message.includes(`${join(dir, 'config.json')}: hidden_size 16 is not divisible`),
    );
  });
});
