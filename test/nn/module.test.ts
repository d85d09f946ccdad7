import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Generator, sum, type Tensor, tensor, tidy } from '../../src/engine/index.js';
import { Dropout, GroupNorm, Linear } from '../../src/nn/layers.js';
import { Module, ModuleList } from '../../src/nn/module.js';

class Block extends Module {
  readonly norm: GroupNorm;
  readonly proj: Linear;
  readonly drop = new Dropout(0.1);
  readonly scale: Tensor;
  constructor(c: number, generator: Generator) {
    super();
    this.norm = this.child('norm', new GroupNorm(1, c));
    // A parameter registered after a child still lists before the children's, as in PyTorch.
    this.scale = this.param('scale', tensor([1]));
    this.proj = this.child('proj', new Linear(c, c, { generator }));
    this.child('drop', this.drop);
  }
}

class Net extends Module {
  readonly embed: Linear;
  readonly blocks: ModuleList<Block>;
  readonly out: Linear;
  constructor(seed = 0) {
    super();
    const g = new Generator(seed);
    this.embed = this.child('embed', new Linear(3, 4, { generator: g }));
    this.blocks = this.child('blocks', new ModuleList([new Block(4, g), new Block(4, g)]));
    this.out = this.child('out', new Linear(4, 2, { generator: g, bias: false }));
  }
}

const NAMES = [
  'embed.weight',
  'embed.bias',
  'blocks.0.scale',
  'blocks.0.norm.weight',
  'blocks.0.norm.bias',
  'blocks.0.proj.weight',
  'blocks.0.proj.bias',
  'blocks.1.scale',
  'blocks.1.norm.weight',
  'blocks.1.norm.bias',
  'blocks.1.proj.weight',
  'blocks.1.proj.bias',
  'out.weight',
];

void describe('Module', () => {
  void it('names parameters with dotted paths, depth-first in registration order', () => {
    const net = new Net();
    assert.deepEqual(
      net.namedParameters().map(([n]) => n),
      NAMES,
    );
    assert.deepEqual([...net.stateDict().keys()], NAMES);
    assert.equal(net.namedParameters()[0]![1], net.embed.weight);
    assert.ok(
      net.parameters().every((p) => p.requiresGrad),
      'every parameter requires grad',
    );
  });

  void it('a prefix names the module path', () => {
    const net = new Net();
    assert.equal(net.namedParameters('unet')[0]![0], 'unet.embed.weight');
    assert.equal(net.blocks.at(1).namedParameters('blocks.1')[2]![0], 'blocks.1.norm.bias');
  });

  void it('ModuleList children are named 0, 1, …', () => {
    const list = new ModuleList([new Linear(2, 2), new Linear(2, 1, { bias: false })]);
    assert.deepEqual(
      list.namedParameters().map(([n]) => n),
      ['0.weight', '0.bias', '1.weight'],
    );
    assert.equal(list.length, 2);
    assert.throws(() => list.at(2), /out of range/);
    assert.deepEqual(
      new Net().namedModules().map(([n]) => n),
      [
        '',
        'embed',
        'blocks',
        'blocks.0',
        'blocks.0.norm',
        'blocks.0.proj',
        'blocks.0.drop',
        'blocks.1',
        'blocks.1.norm',
        'blocks.1.proj',
        'blocks.1.drop',
        'out',
      ],
    );
  });

  void it('counts parameters', () => {
    // embed 3·4 + 4; each block 1 + 4 + 4 + 4·4 + 4; out 4·2
    assert.equal(new Net().numParameters(), 16 + 2 * 29 + 8);
  });

  void it('rejects dotted, empty and duplicate member names', () => {
    class Bad extends Module {
      constructor(name: string, twice = false) {
        super();
        this.param(name, tensor([1]));
        if (twice) this.child(name, new Linear(1, 1));
      }
    }
    assert.throws(() => new Bad('a.b'), /without dots/);
    assert.throws(() => new Bad(''), /non-empty/);
    assert.throws(() => new Bad('w', true), /registered twice/);
  });

  void it('train() and eval() reach every descendant', () => {
    const net = new Net();
    assert.ok(
      net.namedModules().every(([, m]) => m.training),
      'every module training',
    );
    net.eval();
    assert.ok(
      net.namedModules().every(([, m]) => !m.training),
      'no module training',
    );
    assert.equal(net.blocks.at(1).drop.training, false);
    net.blocks.train();
    assert.equal(net.training, false);
    assert.equal(net.blocks.at(0).drop.training, true);
    net.train();
    assert.ok(
      net.namedModules().every(([, m]) => m.training),
      'every module training again',
    );
  });

  void it('zeroGrad clears every gradient', () => {
    const net = new Net();
    tidy(() => sum(net.out.forward(net.embed.forward(tensor([[1, 2, 3]])))).backward());
    assert.notEqual(net.embed.weight.grad, null);
    net.zeroGrad();
    assert.ok(
      net.parameters().every((p) => p.grad === null),
      'every gradient cleared',
    );
  });
});

void describe('loadStateDict', () => {
  void it('copies values into the existing parameters', async () => {
    const a = new Net(1);
    const b = new Net(2);
    const w = b.embed.weight;
    await b.loadStateDict(a.stateDict());
    assert.equal(b.embed.weight, w);
    for (const [n, p] of b.namedParameters()) {
      assert.deepEqual(p.dataSync(), a.stateDict().get(n)!.dataSync(), n);
    }
    assert.ok(b.embed.weight.requiresGrad, 'the loaded weight still requires grad');
  });

  void it('casts to the parameter dtype', async () => {
    const a = await new Net(1).to({ dtype: 'float64' });
    const b = new Net(2);
    await b.loadStateDict(a.stateDict());
    assert.equal(b.embed.weight.dtype, 'float32');
    assert.deepEqual(b.embed.weight.dataSync(), Float32Array.from(a.embed.weight.dataSync()));
  });

  void it('names missing, unexpected and mis-shaped keys in one error and loads nothing', async () => {
    const net = new Net(3);
    const before = net.namedParameters().map(([, p]) => [...p.dataSync()]);
    const sd = new Map(new Net(4).stateDict());
    sd.delete('blocks.1.proj.bias');
    sd.delete('out.weight');
    sd.set('blocks.2.scale', tensor([1]));
    sd.set('embed.weight', tensor(new Float32Array(12), [3, 4]));
    sd.set('blocks.0.scale', tensor([1, 2], [2]));
    await assert.rejects(net.loadStateDict(sd, { source: 'model.safetensors' }), (e) => {
      const msg = (e as Error).message;
      assert.match(msg, /\(model\.safetensors\)/);
      assert.match(msg, /mis-shaped: .*embed\.weight: expected \[4, 3\], found \[3, 4\]/);
      assert.match(msg, /blocks\.0\.scale: expected \[1\], found \[2\]/);
      assert.match(msg, /missing: blocks\.1\.proj\.bias, out\.weight/);
      assert.match(msg, /unexpected: blocks\.2\.scale/);
      return true;
    });
    assert.deepEqual(
      net.namedParameters().map(([, p]) => [...p.dataSync()]),
      before,
    );
  });

  void it('strict: false allows missing and unexpected keys but never a wrong shape', async () => {
    const net = new Net(5);
    const sd = new Map([
      ['out.weight', tensor(new Float32Array(8).fill(2), [2, 4])],
      ['nope', tensor([1])],
    ]);
    await net.loadStateDict(sd, { strict: false });
    assert.deepEqual([...net.out.weight.dataSync()], new Array(8).fill(2));
    sd.set('embed.bias', tensor([1]));
    await assert.rejects(net.loadStateDict(sd, { strict: false }), /embed\.bias: expected \[4\]/);
  });
});

void describe('to()', () => {
  void it('changes dtype in place, keeping every parameter object and its values', async () => {
    const net = new Net(6);
    const before = net.parameters();
    const values = before.map((p) => [...p.dataSync()]);
    tidy(() => sum(net.out.forward(net.embed.forward(tensor([[1, 2, 3]])))).backward());
    const result = await net.to({ dtype: 'float64' });
    assert.equal(result, net);
    const after = net.parameters();
    after.forEach((p, i) => {
      assert.equal(p, before[i], 'same object');
      assert.equal(p.dtype, 'float64');
      assert.ok(p.requiresGrad, `parameter ${i} requires grad`);
      assert.deepEqual([...p.dataSync()], values[i]);
    });
    assert.equal(net.embed.weight.grad, null, 'a gradient of the old dtype is dropped');
    assert.equal(net.blocks.at(0).proj.weight, before[5]);
    // And it trains in float64.
    tidy(() => {
      const y = net.out.forward(
        net.embed.forward(tensor([[1, 2, 3]], undefined, { dtype: 'float64' })),
      );
      assert.equal(y.dtype, 'float64');
      sum(y).backward();
    });
    assert.equal(net.out.weight.grad!.dtype, 'float64');
  });
});
