import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  Generator,
  mean,
  randn,
  square,
  sub,
  type Tensor,
  tensor,
  tidy,
} from '../../src/engine/index.js';
import { Attention } from '../../src/nn/attention.js';
import { Conv2d, GroupNorm, Linear } from '../../src/nn/layers.js';
import { Module, ModuleList } from '../../src/nn/module.js';
import { AdamW } from '../../src/nn/optim.js';
import { readSafetensors } from '../../src/nn/safetensors-fs.js';
import { disposeAll, tensorsFromSafetensors } from '../../src/nn/state-dict.js';
import { loadModule, loadTensors, saveModule, saveTensors } from '../../src/nn/state-io.js';

const here = dirname(fileURLToPath(import.meta.url));
// <repo>/src/nn -> <repo>/../shared/fixtures/diffusers
const FIXTURES = resolve(here, '../../../shared/fixtures/diffusers');
const UNET_FILE = join(FIXTURES, 'unet2d/diffusion_pytorch_model.safetensors');

const dir = await mkdtemp(join(tmpdir(), 'sumi-state-io-'));
after(() => rm(dir, { recursive: true, force: true }));

class Net extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm;
  readonly blocks: ModuleList<Linear>;
  constructor(seed: number) {
    super();
    const generator = new Generator(seed);
    this.conv = this.child('conv', new Conv2d(2, 4, 3, { generator, padding: 1 }));
    this.norm = this.child('norm', new GroupNorm(2, 4));
    this.blocks = this.child(
      'blocks',
      new ModuleList([new Linear(4, 4, { generator }), new Linear(4, 3, { generator })]),
    );
  }
}

/** Each parameter of a with its namesake in b. */
function paramPairs(a: Module, b: Module): [string, Tensor, Tensor][] {
  const other = new Map(b.namedParameters());
  return a.namedParameters().map(([n, p]): [string, Tensor, Tensor] => [n, p, other.get(n)!]);
}

/** Round to the nearest IEEE half (ties to even), for checking F16 storage. */
function toHalf(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const e = Math.max(Math.floor(Math.log2(Math.abs(x))), -14);
  const ulp = 2 ** (e - 10);
  const q = x / ulp;
  const r = Math.round(q);
  const even = Math.abs(q - Math.trunc(q)) === 0.5 ? 2 * Math.round(q / 2) : r;
  return even * ulp;
}

void describe('saveModule / loadModule', () => {
  void it('round-trips every parameter bit for bit in F32', async () => {
    const path = join(dir, 'net-f32.safetensors');
    const a = new Net(1);
    await saveModule(a, path);
    const file = await readSafetensors(path);
    assert.deepEqual(file.metadata, { format: 'pt' });
    assert.deepEqual(
      [...file.tensors.keys()].sort(),
      a
        .namedParameters()
        .map(([n]) => n)
        .sort(),
    );
    assert.equal(file.tensors.get('conv.weight')!.dtype, 'F32');
    assert.deepEqual(file.tensors.get('blocks.1.weight')!.shape, [3, 4]);

    const b = new Net(2);
    const w = b.conv.weight;
    await loadModule(b, path);
    assert.equal(b.conv.weight, w, 'parameters keep their identity');
    for (const [n, pa, pb] of paramPairs(a, b)) {
      assert.deepEqual(pb.dataSync(), pa.dataSync(), n);
    }
  });

  void it('F16 stores half-precision values, read back as float32', async () => {
    const path = join(dir, 'net-f16.safetensors');
    const a = new Net(3);
    await saveModule(a, path, { dtype: 'F16' });
    const file = await readSafetensors(path);
    assert.ok(
      [...file.tensors.values()].every((e) => e.dtype === 'F16'),
      'every tensor saved as F16',
    );
    const b = new Net(4);
    await loadModule(b, path);
    for (const [n, pa, pb] of paramPairs(a, b)) {
      assert.equal(pb.dtype, 'float32');
      assert.deepEqual([...pb.dataSync()], [...pa.dataSync()].map(toHalf), n);
    }
  });

  void it('float64 modules save as F64 and reload exactly', async () => {
    const path = join(dir, 'net-f64.safetensors');
    const a = await new Net(5).to({ dtype: 'float64' });
    await saveModule(a, path);
    assert.equal((await readSafetensors(path)).tensors.get('conv.bias')!.dtype, 'F64');
    const b = await new Net(6).to({ dtype: 'float64' });
    await loadModule(b, path);
    assert.deepEqual(b.conv.bias!.dataSync(), a.conv.bias!.dataSync());
  });

  void it('names the file and the offending keys when the module does not match', async () => {
    const path = join(dir, 'net-for-mismatch.safetensors');
    await saveModule(new Net(7), path);
    class Other extends Module {
      readonly conv = this.child('conv', new Conv2d(2, 5, 3));
      readonly extra = this.child('extra', new Linear(2, 2));
    }
    const m = new Other();
    const before = [...m.conv.weight.dataSync()];
    await assert.rejects(loadModule(m, path), (e) => {
      const msg = (e as Error).message;
      assert.ok(msg.includes(path), msg);
      assert.match(msg, /conv\.weight: expected \[5, 2, 3, 3\], found \[4, 2, 3, 3\]/);
      assert.match(msg, /missing: extra\.weight, extra\.bias/);
      assert.match(msg, /unexpected: .*norm\.weight/);
      return true;
    });
    assert.deepEqual([...m.conv.weight.dataSync()], before, 'nothing loaded');
    await loadModule(new Net(8), path); // and the right module loads fine
  });

  void it('a corrupt or truncated file gives an error naming the file', async () => {
    const garbage = join(dir, 'garbage.safetensors');
    await writeFile(garbage, new Uint8Array([1, 2, 3, 4, 5]));
    await assert.rejects(loadModule(new Net(9), garbage), (e) => {
      assert.ok((e as Error).message.includes(garbage), (e as Error).message);
      return true;
    });
    const truncated = join(dir, 'truncated.safetensors');
    const good = join(dir, 'good.safetensors');
    await saveModule(new Net(10), good);
    const bytes = await readFile(good);
    await writeFile(truncated, bytes.subarray(0, bytes.length - 7));
    await assert.rejects(loadModule(new Net(11), truncated), (e) => {
      const msg = (e as Error).message;
      assert.ok(msg.includes(truncated), msg);
      return true;
    });
    const missing = join(dir, 'does-not-exist.safetensors');
    await assert.rejects(loadModule(new Net(12), missing), (e) => {
      assert.ok((e as Error).message.includes(missing), (e as Error).message);
      return true;
    });
  });
});

void describe('diffusers checkpoint', () => {
  void it('reads the unet2d fixture into named tensors', async () => {
    const t = await loadTensors(UNET_FILE);
    assert.equal(t.size, 182);
    let count = 0;
    for (const v of t.values()) count += v.size;
    assert.equal(count, 1_113_955); // fixture.json num_parameters
    assert.deepEqual(t.get('conv_in.weight')!.shape, [32, 3, 3, 3]);
    assert.deepEqual(t.get('conv_out.weight')!.shape, [3, 32, 3, 3]);
    assert.deepEqual(t.get('down_blocks.1.resnets.0.conv_shortcut.weight')!.shape, [64, 32, 1, 1]);
    assert.deepEqual(t.get('down_blocks.1.attentions.0.to_out.0.weight')!.shape, [64, 64]);
    assert.deepEqual(t.get('time_embedding.linear_1.weight')!.shape, [128, 32]);
    assert.equal(t.get('conv_in.bias')!.dtype, 'float32');
    assert.deepEqual(
      [...t.get('conv_in.bias')!.dataSync().subarray(0, 4)],
      [-0.1857505738735199, -0.08962543308734894, 0.08469218015670776, -0.053930044174194336],
    );
    disposeAll(t);
  });

  void it("loads an attention block's weights by diffusers names into Attention", async () => {
    const file = await readSafetensors(UNET_FILE);
    const all = tensorsFromSafetensors(file, { dtype: 'float64' });
    const prefix = 'mid_block.attentions.0.';
    const sub = new Map(
      [...all].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]),
    );
    // config: attention_head_dim 8 over 64 channels, norm_num_groups 8, biases, residual.
    const attn = new Attention(64, {
      heads: 8,
      dimHead: 8,
      bias: true,
      normNumGroups: 8,
      residualConnection: true,
    });
    await attn.to({ dtype: 'float64' });
    await attn.loadStateDict(sub, { source: UNET_FILE });
    assert.equal(attn.toQ.weight.dtype, 'float64');
    assert.deepEqual(
      attn.toQ.weight.dataSync(),
      Float64Array.from(file.tensors.get(`${prefix}to_q.weight`)!.data),
    );
    disposeAll(all);
  });
});

void describe('saveTensors / loadTensors', () => {
  void it('carries optimizer state through a file: resuming gives bit-identical parameters', async () => {
    const model = new Net(20);
    const head = model.blocks.at(1);
    const stepOnce = (opt: AdamW, m: Net, i: number): void => {
      tidy(() => {
        const x = randn([5, 4], { seed: 3, offset: 4 * i });
        const y = randn([5, 3], { seed: 4, offset: 4 * i });
        const h = m.blocks.at(1).forward(m.blocks.at(0).forward(x));
        mean(square(sub(h, y))).backward();
      });
      opt.step();
      opt.zeroGrad();
    };
    const opt = new AdamW(model, { lr: 1e-2 });
    for (let i = 0; i < 3; i++) stepOnce(opt, model, i);
    const statePath = join(dir, 'optimizer.safetensors');
    const modelPath = join(dir, 'model.safetensors');
    const state = opt.stateDict();
    await saveTensors(statePath, state);
    await saveModule(model, modelPath);
    const stored = await readSafetensors(statePath);
    assert.equal(stored.tensors.get('blocks.1.weight.step')!.dtype, 'I32');
    assert.equal(stored.tensors.get('blocks.1.weight.exp_avg')!.dtype, 'F32');
    // The convolution and norm got no gradient: they have no state.
    assert.equal(stored.tensors.has('conv.weight.step'), false);
    for (let i = 3; i < 6; i++) stepOnce(opt, model, i);

    const model2 = new Net(21);
    await loadModule(model2, modelPath);
    const opt2 = new AdamW(model2, { lr: 1e-2 });
    const loaded = await loadTensors(statePath);
    await opt2.loadStateDict(loaded, { source: statePath });
    disposeAll(loaded);
    for (let i = 3; i < 6; i++) stepOnce(opt2, model2, i);
    assert.deepEqual(model2.blocks.at(1).weight.dataSync(), head.weight.dataSync());
    assert.deepEqual(model2.blocks.at(0).bias!.dataSync(), model.blocks.at(0).bias!.dataSync());
    disposeAll(state);
  });

  void it('copies a file unchanged through load and save', async () => {
    const copy = join(dir, 'unet-copy.safetensors');
    await copyFile(UNET_FILE, join(dir, 'unet.safetensors'));
    const t = await loadTensors(join(dir, 'unet.safetensors'));
    await saveTensors(copy, t);
    const [a, b] = await Promise.all([readSafetensors(UNET_FILE), readSafetensors(copy)]);
    assert.deepEqual([...b.tensors.keys()].sort(), [...a.tensors.keys()].sort());
    for (const [k, e] of a.tensors) assert.deepEqual(b.tensors.get(k)!.data, e.data, k);
    disposeAll(t);
  });

  void it('int32 tensors are written as I32 whatever the float dtype', async () => {
    const path = join(dir, 'ints.safetensors');
    const m = new Map<string, Tensor>([
      ['ids', tensor(new Int32Array([1, -2, 3]), [3])],
      ['x', tensor([0.1, 0.2], [2])],
    ]);
    await saveTensors(path, m, { dtype: 'F16' });
    const f = await readSafetensors(path);
    assert.equal(f.tensors.get('ids')!.dtype, 'I32');
    assert.equal(f.tensors.get('x')!.dtype, 'F16');
    const back = await loadTensors(path);
    assert.equal(back.get('ids')!.dtype, 'int32');
    assert.deepEqual([...back.get('ids')!.dataSync()], [1, -2, 3]);
  });
});
