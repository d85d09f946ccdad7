/**
 * `sumi eval` end to end on tiny random models (8×8 MNIST, a 16-feature classifier): fd with
 * --json and --save-samples, the saved folder scored again with --samples, cond over guidance
 * scales, nll, sweep files that a rerun continues, and every kind of bad input refused with one
 * line, exit code 2 and nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { mixLabels } from '../../src/eval/evaluate.js';
import { writeTinyClassifier, writeTinyModel } from '../../src/eval/test-models.js';
import { sumiInProcess as sumi } from './run-sumi.js';

let dir = '';
let cls = '';
let model = '';
let cache = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-eval-cli-'));
  cls = await writeTinyClassifier(join(dir, 'cls'));
  model = await writeTinyModel(join(dir, 'model'));
  cache = join(dir, 'cache');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const plain = ['--backend', 'cpu', '--quiet'];
const base = (): string[] => [...plain, '--cache-dir', cache];

interface FdJson {
  metrics: {
    fd: number;
    samples: number;
    kid: { value: number; std: number; subsetSize: number };
    precision: number;
    recall: number;
    classes: { entropyBits: number };
    conditional: { accuracy: number; standardError: number; perClass: unknown[] } | null;
  };
  reference: { split: string; images: number; cache: { source: string } };
  floor: { distance: number } | null;
  sampling: { modelCallsPerImage: number } | null;
}

void describe('sumi eval', () => {
  void test('--help lists the subcommands; a missing or unknown one is a usage error', async () => {
    const top = await sumi(['eval', '--help']);
    assert.equal(top.code, 0);
    for (const s of ['fd', 'cond', 'nll', 'sweep'])
      assert.match(top.stdout, new RegExp(`\\n  ${s} `));
    const fd = await sumi(['eval', 'fd', '--help']);
    assert.equal(fd.code, 0);
    assert.match(fd.stdout, /^usage: sumi eval fd /);
    assert.match(fd.stdout, /--save-samples/);
    assert.equal((await sumi(['eval'])).code, 2);
    assert.match((await sumi(['eval', 'fid'])).stderr, /unknown subcommand 'fid'/);
    assert.match((await sumi(['--help'])).stdout, /\n {2}eval /);
  });

  void test('fd on mnist-full: the test split is the reference, the floor is n held-out training digits', async () => {
    const full = await writeTinyClassifier(join(dir, 'cls-full'), {
      data: 'mnist-full',
      holdout: 0.01,
    });
    const args = [
      'eval',
      'fd',
      '--model',
      model,
      '--classifier',
      full,
      '--n',
      '24',
      '--steps',
      '2',
    ];
    const r = await sumi([...args, '--json', ...base()]);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout) as FdJson & {
      floor: {
        nA: number;
        nB: number;
        kind: string;
        precision: number;
        recall: number;
        prRows: number;
      } | null;
    };
    assert.deepEqual([a.reference.split, a.reference.images], ['test', 10000]);
    assert.deepEqual(
      [a.floor?.kind, a.floor?.nA, a.floor?.nB],
      ['held-out', 24, 10000],
      'as many real digits as samples',
    );
    const t = await sumi([...args, ...base()]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(
      t.stdout,
      /\nFD floor +[\d.e-]+ +24 held-out real images vs the 10000 reference images/,
    );
    // Precision and recall of those real digits, next to the samples'.
    assert.ok(
      a.floor !== null && a.floor.precision > 0 && a.floor.precision <= 1,
      'floor precision',
    );
    assert.equal(a.floor.prRows, 24);
    assert.match(
      t.stdout,
      new RegExp(
        `\\nprecision \\(k=3\\) +[\\d.]+ +24 samples vs 24 reference images; the floor's real images: ${a.floor.precision.toFixed(4)}\\n`,
      ),
    );
    assert.match(
      t.stdout,
      new RegExp(
        `\\nrecall \\(k=3\\) +[\\d.]+ +the floor's real images: ${a.floor.recall.toFixed(4)}\\n`,
      ),
    );
    // --class reference: the test split's digit proportions (980, 1135, ... of 10,000).
    const mixed = await sumi([...args, '--class', 'reference', '--json', ...base()]);
    assert.equal(mixed.code, 0, mixed.stderr);
    const m = JSON.parse(mixed.stdout) as FdJson & {
      sampling: { conditions: string };
      metrics: { conditional: { perClassCount: number[] } };
    };
    const counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    const expected = new Array<number>(10).fill(0);
    for (const y of mixLabels(24, counts)) expected[y]!++;
    assert.deepEqual(m.metrics.conditional.perClassCount, expected);
    assert.match(m.sampling.conditions, /in the reference set's proportions/);
    assert.deepEqual(m.floor, a.floor, 'the same floor');
  });

  void test('fd: JSON with every metric; the saved samples score the same from their folder', async () => {
    const saved = join(dir, 'saved');
    const args = ['eval', 'fd', '--model', model, '--classifier', cls, '--n', '24', '--steps', '3'];
    const r = await sumi([...args, '--batch', '12', '--save-samples', saved, '--json', ...base()]);
    assert.equal(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout) as FdJson;
    assert.equal(a.metrics.samples, 24);
    assert.deepEqual([a.reference.split, a.reference.images], ['holdout', 501]);
    assert.ok(a.floor !== null && a.floor.distance < a.metrics.fd, 'FD above the floor');
    assert.equal(a.metrics.kid.subsetSize, 24);
    assert.ok(a.metrics.conditional !== null, 'a class model gets conditional accuracy');
    assert.equal(a.metrics.conditional.perClass.length, 10);
    assert.equal(a.sampling?.modelCallsPerImage, 3);
    assert.equal(readdirSync(saved).filter((f) => f.endsWith('.png')).length, 24);
    const index = JSON.parse(await readFile(join(saved, 'labels.json'), 'utf8')) as {
      meta: { sampler: string };
      samples: { label: number }[];
    };
    assert.equal(index.meta.sampler, 'dpmpp-2m');
    assert.deepEqual(
      index.samples.map((s) => s.label),
      Array.from({ length: 24 }, (_, i) => i % 10),
    );
    const f = await sumi([
      'eval',
      'fd',
      '--classifier',
      cls,
      '--samples',
      saved,
      '--json',
      ...base(),
    ]);
    assert.equal(f.code, 0, f.stderr);
    const b = JSON.parse(f.stdout) as FdJson;
    assert.equal(b.reference.cache.source, 'cache');
    assert.ok(
      Math.abs(b.metrics.fd - a.metrics.fd) <= 1e-6 * a.metrics.fd,
      `${b.metrics.fd} vs ${a.metrics.fd}`,
    );
    assert.equal(b.metrics.conditional?.accuracy, a.metrics.conditional.accuracy);
    const text = await sumi([...args, ...base()]);
    assert.equal(text.code, 0, text.stderr);
    for (const row of [
      /\nFD  +\d/,
      /\nFD floor +\d/,
      /\nKID +\S+ ± /,
      /precision \(k=3\)/,
      /class entropy/,
    ]) {
      assert.match(text.stdout, row);
    }
    assert.match(text.stdout, /conditional accuracy +\d\.\d{4} ± \d\.\d{4}/);
  });

  void test('cond: accuracy with its standard error per guidance scale', async () => {
    const r = await sumi([
      'eval',
      'cond',
      '--model',
      model,
      '--classifier',
      cls,
      '--guidance',
      '1,3',
      '--n',
      '20',
      '--steps',
      '2',
      '--json',
      ...plain,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      results: { guidance: number; accuracy: number; standardError: number; n: number }[];
    };
    assert.deepEqual(
      j.results.map((x) => [x.guidance, x.n]),
      [
        [1, 20],
        [3, 20],
      ],
    );
    for (const x of j.results) {
      assert.ok(
        Math.abs(x.standardError - Math.sqrt((x.accuracy * (1 - x.accuracy)) / 20)) < 1e-12,
        'binomial standard error',
      );
    }
  });

  void test('cond --fd: each scale scored like eval fd at that scale, and the chart', async () => {
    const plot = join(dir, 'charts', 'guidance.svg');
    const common = ['--model', model, '--classifier', cls, '--n', '24', '--steps', '2'];
    const r = await sumi([
      'eval',
      'cond',
      ...common,
      '--guidance',
      '1,3',
      '--fd',
      '--plot',
      plot,
      '--json',
      ...base(),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      floor: { distance: number; kind: string } | null;
      reference: { split: string } | null;
      results: {
        guidance: number;
        distribution: { fd: number; precision: number; recall: number } | null;
      }[];
    };
    assert.equal(j.reference?.split, 'holdout');
    assert.ok(j.floor !== null && j.floor.distance > 0, 'a floor with --fd');
    const fd3 = await sumi(['eval', 'fd', ...common, '--guidance', '3', '--json', ...base()]);
    assert.equal(fd3.code, 0, fd3.stderr);
    const single = JSON.parse(fd3.stdout) as FdJson;
    const at3 = j.results.find((x) => x.guidance === 3)?.distribution;
    assert.ok(at3 !== undefined && at3 !== null, 'scale 3 scored');
    assert.equal(at3.fd, single.metrics.fd, 'same noise, conditions and reference as eval fd');
    assert.equal(at3.precision, single.metrics.precision);
    assert.equal(j.floor.distance, single.floor?.distance);
    assert.notEqual(j.results[0]!.distribution!.fd, at3.fd, 'the scale changes the samples');
    const svg = await readFile(plot, 'utf8');
    assert.match(svg, /^<svg /);
    assert.match(svg, /classifier-free guidance scale w/);
    assert.match(svg, /floor /);
    const text = await sumi(['eval', 'cond', ...common, '--guidance', '1,3', '--fd', ...base()]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /guidance +accuracy ± s\.e\. +entropy +FD +precision +recall/);
    assert.match(
      text.stdout,
      /\nFD floor \((held-out|halves)\): [\d.e-]+; its real images' precision [\d.]+, recall [\d.]+\n/,
    );
    const noFd = await sumi(['eval', 'cond', ...common, '--plot', join(dir, 'no.svg')]);
    assert.equal(noFd.code, 2);
    assert.match(noFd.stderr, /^sumi eval cond: --plot draws FD: add --fd\n/);
    const png = await sumi(['eval', 'cond', ...common, '--fd', '--plot', join(dir, 'g.png')]);
    assert.equal(png.code, 2);
    assert.match(png.stderr, /^sumi eval cond: --plot must name a \.svg file, got '.*g\.png'\n/);
    assert.ok(
      !existsSync(join(dir, 'no.svg')) && !existsSync(join(dir, 'g.png')),
      'nothing written',
    );
  });

  void test('nll: bits/dim with its standard error', async () => {
    const r = await sumi([
      'eval',
      'nll',
      '--model',
      model,
      '--n',
      '4',
      '--stride',
      '50',
      '--json',
      ...plain,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      bitsPerDim: number;
      standardError: number;
      estimator: string;
    };
    assert.ok(Number.isFinite(j.bitsPerDim) && j.standardError > 0, r.stdout);
    assert.equal(j.estimator, 'stratified');
  });

  void test('sweep: JSON and SVG; a rerun with the same settings continues', async () => {
    const out = join(dir, 'sweep.json');
    const plot = join(dir, 'sweep.svg');
    const args = [
      'eval',
      'sweep',
      '--model',
      model,
      '--classifier',
      cls,
      '--samplers',
      'ddim,euler',
    ];
    const r = await sumi([
      ...args,
      '--steps',
      '2,3',
      '--n',
      '20',
      '--out',
      out,
      '--plot',
      plot,
      ...base(),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\nddim +\d\S* +\d/);
    const j = JSON.parse(await readFile(out, 'utf8')) as { points: unknown[]; floor: number };
    assert.equal(j.points.length, 4);
    assert.equal((await readFile(plot, 'utf8')).match(/<polyline/g)?.length, 2);
    const again = await sumi([
      ...args,
      '--steps',
      '2,3',
      '--n',
      '20',
      '--out',
      out,
      '--json',
      ...base(),
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as { points: unknown[] }).points, j.points);
  });

  void test('bad input: one line, exit code 2, nothing written', async () => {
    const big = await writeTinyClassifier(join(dir, 'cls16'), { size: 16 });
    const five = await writeTinyClassifier(join(dir, 'cls5'), { numClasses: 5 });
    const uncond = await writeTinyModel(join(dir, 'uncond'), { classes: null });
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const fresh = join(dir, 'fresh-cache');
    const out = join(dir, 'not-written');
    const cases: [string[], RegExp][] = [
      [
        ['--model', model, '--classifier', big],
        /the model's samples are 1x8x8 images; the classifier takes 1x16x16/,
      ],
      [
        ['--model', model, '--classifier', five],
        /the classifier has 5 classes, the model's requests 10/,
      ],
      [
        ['--model', model, '--classifier', cls, '--n', '16'],
        /16 samples for 16 features: .*FD is undefined/,
      ],
      [['--model', uncond, '--classifier', cls, '--class', '3'], /the model is unconditional/],
      [
        ['--model', model, '--classifier', cls, '--data', 'fashion-mnist'],
        /fashion-mnist has 1x28x28/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await sumi(['eval', 'fd', ...args, '--save-samples', out, '--cache-dir', fresh]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.ok(!existsSync(out) && !existsSync(fresh), 'nothing written');
    }
    const e = await sumi([
      'eval',
      'fd',
      '--classifier',
      cls,
      '--samples',
      empty,
      '--cache-dir',
      fresh,
    ]);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /has no PNG images/);
    const c = await sumi(['eval', 'cond', '--model', uncond, '--classifier', cls]);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /give --guide-classifier DIR/);
    assert.ok(!existsSync(fresh), 'nothing written');
  });

  void test('sampling settings are checked before any work, as sumi sample checks them', async () => {
    const fresh = join(dir, 'settings-cache');
    const small = ['--model', model, '--classifier', cls, '--n', '20', '--steps', '1'];
    const cached = [...small, '--cache-dir', fresh];
    const cases: [string[], RegExp][] = [
      [
        ['fd', ...cached, '--sampler', 'euler', '--eta', '0.5'],
        /^sumi eval fd: --eta is for ddim; sampler 'euler' has no η\n/,
      ],
      [
        ['fd', ...cached, '--sampler', 'ddim', '--eta', '-1'],
        /^sumi eval fd: --eta must be from 0 \(deterministic\) to 1 \(DDPM-like\), got -1\n/,
      ],
      [
        ['fd', ...cached, '--guidance', '1e300'],
        /^sumi eval fd: --guidance must be from 0 to 100 \(1: no guidance\), got 1e\+300\n/,
      ],
      [['fd', ...cached, '--replicas', '3'], /^sumi eval fd: --replicas must be 1 or 2, got 3\n/],
      [
        ['cond', ...small, '--guidance', '1,3,1e300'],
        /^sumi eval cond: --guidance must be from 0 to 100 \(1: no guidance\), got 1e\+300\n/,
      ],
      [
        [
          'sweep',
          ...cached,
          '--samplers',
          'dpmpp-2m,euler',
          '--eta',
          '0.5',
          '--out',
          join(dir, 'no.json'),
        ],
        /^sumi eval sweep: --eta is for ddim; sampler 'dpmpp-2m' has no η\n/,
      ],
      [
        [
          'sweep',
          ...cached,
          '--samplers',
          'euler,ddim',
          '--eta',
          '1.5',
          '--out',
          join(dir, 'no.json'),
        ],
        /^sumi eval sweep: --eta must be from 0 \(deterministic\) to 1 \(DDPM-like\), got 1\.5\n/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await sumi(['eval', ...args, ...plain]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
      assert.ok(!existsSync(fresh), `${args.join(' ')}: nothing written before the check`);
    }
  });
});
