/**
 * The `sumi` command line, end to end: `--help` of every command; one clear line (no stack
 * trace) and a non-zero exit for each kind of mistake; `sumi train` on a tiny model, then
 * `sumi sample` with every sampler writing a valid PNG, trajectories as GIF and PNG strip,
 * resume rules, export, and a diverging run stopping with exit code 3.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { vulkanLoaderFound } from '../../src/cli/common.js';
import { decodePng } from '../../src/data/index.js';
import { TINY_UNET } from '../diffusion/train-setup.js';
import { assertCleanError, type Result, STACK, sumiInProcess } from './run-sumi.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SAMPLERS = [
  'ddpm',
  'ddim',
  'euler',
  'euler-a',
  'heun',
  'dpmpp-2m',
  'dpmpp-2m-sde',
  'lms',
  'pndm',
  'unipc',
];

/** `node bin/sumi.js ...args` in the repository root, with `env` added to the environment. */
function sumi(args: readonly string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(ROOT, 'bin', 'sumi.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, SUMI_BACKEND: 'cpu', ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const TINY = {
  model: { _class_name: 'UNet2DModel', ...TINY_UNET },
  scheduler: { num_train_timesteps: 100 },
  train: { image_size: 8, batch_size: 4, lr: 1e-3, warmup_steps: 1, sample_every: 0, log_every: 1 },
};

let dir: string;
let config: string;
let run: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-cli-'));
  config = join(dir, 'tiny.json');
  await writeFile(config, JSON.stringify(TINY));
  run = join(dir, 'run');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('sumi --help', () => {
  void test('every command has --help (exit 0) and the top level lists them', async () => {
    const cmds = ['train', 'sample', 'demo', 'export'];
    const results = await Promise.all([sumi(['--help']), ...cmds.map((c) => sumi([c, '--help']))]);
    const [top, ...each] = results;
    assert.equal(top.code, 0);
    for (const c of cmds) assert.match(top.stdout, new RegExp(`\\n  ${c} `));
    each.forEach((r, i) => {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: sumi ${cmds[i]!} `));
      assert.match(r.stdout, /--help/);
    });
    assert.match(each[0]!.stdout, /--resume/);
    assert.match(each[1]!.stdout, /dpmpp-2m-sde/);
  });
});

void describe('sumi train and sample', () => {
  void test('train a tiny model (4 steps), then a diverging run stops with exit code 3', async () => {
    const [ok, nan] = await Promise.all([
      sumi([
        'train',
        '--data',
        'mnist',
        '--config',
        config,
        '--steps',
        '4',
        '--save-every',
        '2',
        '--out',
        run,
      ]),
      sumi([
        'train',
        '--data',
        'mnist',
        '--config',
        config,
        '--steps',
        '30',
        '--save-every',
        '1',
        '--lr',
        '1e30',
        '--grad-clip',
        '0',
        '--warmup',
        '0',
        '--out',
        join(dir, 'nan'),
      ]),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /trained to step 4\/4/);
    assert.match(ok.stderr, /step 4\/4 100% loss/); // plain progress lines: stderr is not a TTY
    const metrics = (await readFile(join(run, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(metrics.length, 4);
    assertCleanError(
      nan,
      3,
      /sumi train: training stopped: the (loss|gradient norm) is (NaN|-?Infinity) at step \d+; (the last good checkpoint \(step \d+\) is kept in \S+checkpoint|no checkpoint had been written yet)\n$/,
    );
  });

  void test('sample with every sampler writes a valid PNG grid', async () => {
    for (const s of SAMPLERS) {
      const out = join(dir, `grid-${s}.png`);
      const r = await sumiInProcess([
        'sample',
        '--model',
        run,
        '--sampler',
        s,
        '--steps',
        '3',
        '--n',
        '4',
        '--out',
        out,
      ]);
      assert.equal(r.code, 0, `${s}: ${r.stderr}`);
      const img = decodePng(await readFile(out));
      // 2x2 grid of 8x8 images with 2-pixel padding.
      assert.deepEqual([img.width, img.height, img.channels], [22, 22, 1], s);
    }
  });

  void test('--karras, --eta, and the trajectory as GIF and as PNG strip', async () => {
    const gif = join(dir, 'traj.gif');
    const strip = join(dir, 'traj.png');
    const a = await sumiInProcess([
      'sample',
      '--model',
      run,
      '--sampler',
      'euler',
      '--karras',
      '--steps',
      '4',
      '--n',
      '4',
      '--out',
      join(dir, 'k.png'),
      '--trajectory',
      gif,
    ]);
    assert.equal(a.code, 0, a.stderr);
    const bytes = await readFile(gif);
    assert.equal(bytes.subarray(0, 6).toString('latin1'), 'GIF89a');
    assert.equal(bytes.readUInt16LE(6), 2 * 22 + 6); // x_t grid | x̂_0 grid
    const b = await sumiInProcess([
      'sample',
      '--model',
      run,
      '--sampler',
      'ddim',
      '--eta',
      '1',
      '--steps',
      '3',
      '--n',
      '2',
      '--out',
      join(dir, 'e.png'),
      '--trajectory',
      strip,
    ]);
    assert.equal(b.code, 0, b.stderr);
    const img = decodePng(await readFile(strip));
    // 3 steps in columns; 2 images x (x_t, x̂_0) rows.
    assert.deepEqual([img.width, img.height], [3 * 10 + 2, 4 * 10 + 2]);
  });

  void test('resume: refuses to overwrite, continues to --steps, refuses changed settings', async () => {
    const again = await sumi([
      'train',
      '--data',
      'mnist',
      '--config',
      config,
      '--steps',
      '4',
      '--out',
      run,
    ]);
    assertCleanError(again, 2, /already holds a checkpoint \(step 4\); pass --resume/);
    const [changed, more] = await Promise.all([
      sumi(['train', '--out', run, '--resume', '--lr', '0.5', '--steps', '6']),
      (async () => {
        const copy = join(dir, 'run-copy');
        await cp(run, copy, { recursive: true });
        return sumi(['train', '--out', copy, '--resume', '--steps', '6', '--quiet']);
      })(),
    ]);
    assertCleanError(
      changed,
      2,
      /these differ: --lr: checkpoint 0\.001, given 0\.5\n\(sumi train --help/,
    );
    assert.equal(more.code, 0, more.stderr);
    assert.match(more.stdout, /trained to step 6\/6/);
  });

  void test('--batch-size: image 2 of 3 in batches of 2 is image 2 of 8 in one batch (ddpm)', async () => {
    const folders = [join(dir, 'b2'), join(dir, 'b8')];
    for (const [n, b, folder] of [
      ['3', '2', folders[0]!],
      ['8', '8', folders[1]!],
    ] as const) {
      const r = await sumiInProcess([
        'sample',
        '--model',
        run,
        '--sampler',
        'ddpm',
        '--steps',
        '3',
        '--n',
        n,
        '--batch-size',
        b,
        '--out-dir',
        folder,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    const [a, b] = await Promise.all(folders.map((f) => readFile(join(f, '000002.png'))));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, await readFile(join(folders[1]!, '000001.png')));
  });

  void test('--rescale-zero-snr trains v with rescale_betas_zero_snr; refused with ε', async () => {
    const zsnr = join(dir, 'zsnr');
    const common = ['train', '--data', 'mnist', '--config', config, '--steps', '1'];
    const [eps, v] = await Promise.all([
      sumi([...common, '--rescale-zero-snr', '--out', join(dir, 'zsnr-eps')]),
      sumi([...common, '--rescale-zero-snr', '--prediction-type', 'v', '--out', zsnr, '--quiet']),
    ]);
    assertCleanError(
      eps,
      1,
      /^sumi train: rescale_betas_zero_snr makes ᾱ_T = 0, where an ε-prediction gives no x̂_0; train v_prediction \(or sample\) with it\n$/,
    );
    assert.equal(v.code, 0, v.stderr);
    const sched = JSON.parse(
      await readFile(join(zsnr, 'checkpoint', 'scheduler', 'scheduler_config.json'), 'utf8'),
    ) as Record<string, unknown>;
    assert.equal(sched.rescale_betas_zero_snr, true);
    assert.equal(sched.prediction_type, 'v_prediction');
  });

  void test('export writes a sample-ready folder (f16) that sample reads', async () => {
    const exported = join(dir, 'export');
    const e = await sumiInProcess(['export', '--model', run, '--out', exported, '--dtype', 'f16']);
    assert.equal(e.code, 0, e.stderr);
    const info = JSON.parse(await readFile(join(exported, 'sumi.json'), 'utf8')) as {
      trainArgs: string[];
    };
    assert.deepEqual(info.trainArgs.slice(-2), ['--steps', '4']);
    const s = await sumiInProcess([
      'sample',
      '--model',
      exported,
      '--steps',
      '2',
      '--n',
      '1',
      '--out',
      join(dir, 'x.png'),
    ]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /model weights/);
  });
});

void describe('errors: one clear line, no stack trace, non-zero exit', () => {
  void test('sample: unknown sampler, missing or broken model folders, bad options', async () => {
    const missingWeights = join(dir, 'missing-weights');
    const badConfig = join(dir, 'bad-config');
    await cp(join(run, 'checkpoint'), missingWeights, { recursive: true });
    await rm(join(missingWeights, 'unet_ema', 'diffusion_pytorch_model.safetensors'));
    await cp(join(run, 'checkpoint'), badConfig, { recursive: true });
    await writeFile(
      join(badConfig, 'unet', 'config.json'),
      '{"_class_name": "UNet2DModel", "bogus": 1}',
    );
    const rs = await Promise.all([
      sumi(['sample', '--model', run, '--sampler', 'nope']),
      sumi(['sample', '--model', join(dir, 'no-such-dir')]),
      sumi([
        'sample',
        '--model',
        missingWeights,
        '--n',
        '1',
        '--steps',
        '1',
        '--out',
        join(dir, 'm.png'),
      ]),
      sumi([
        'sample',
        '--model',
        badConfig,
        '--weights',
        'model',
        '--n',
        '1',
        '--steps',
        '1',
        '--out',
        join(dir, 'b.png'),
      ]),
      sumi(['sample', '--model', dir]),
      sumi(['sample', '--model', run, '--steps', 'many']),
      sumi(['sample', '--model', run, '--sampler', 'ddim', '--karras']),
    ]);
    assertCleanError(
      rs[0],
      2,
      /^sumi sample: unknown sampler 'nope' \(choose one of ddpm, ddim, .*unipc\)\n/,
    );
    assertCleanError(rs[1], 1, /^sumi sample: model directory '.*no-such-dir' does not exist\n$/);
    assertCleanError(rs[2], 1, /^sumi sample: .*unet_ema: no diffusion_pytorch_model\.safetensors/);
    assertCleanError(
      rs[3],
      1,
      /^sumi sample: .*unet\/config\.json: UNet2DModel config: bogus: unknown key\n$/,
    );
    assertCleanError(rs[4], 1, /not a model directory/);
    assertCleanError(rs[5], 2, /--steps expects an integer, got 'many'/);
    assertCleanError(rs[6], 2, /sampler 'ddim' has no Karras sigmas/);
  });

  void test('sample: settings out of range, --eta for a sampler without η, --batch-size 0', async () => {
    const rs: Result[] = [];
    for (const a of [
      ['--guidance', '1e300'],
      ['--eta', '-1'],
      ['--sampler', 'euler', '--eta', '0.5'],
      ['--batch-size', '0'],
      ['--guidance-rescale', '2'],
    ]) {
      rs.push(await sumiInProcess(['sample', '--model', run, ...a, '--out', join(dir, 'no.png')]));
    }
    const usage = '\\n\\(sumi sample --help lists the options\\)\\n$';
    const expected = [
      /^sumi sample: --guidance must be from 0 to 100 \(1: no guidance\), got 1e\+300/,
      /^sumi sample: --eta must be from 0 \(deterministic\) to 1 \(DDPM-like\), got -1/,
      /^sumi sample: --eta is for ddim; sampler 'euler' has no η/,
      /^sumi sample: --batch-size must be at least 1, got 0/,
      /^sumi sample: --guidance-rescale must be from 0 to 1, got 2/,
    ];
    rs.forEach((r, i) => assertCleanError(r, 2, new RegExp(expected[i]!.source + usage)));
    assert.ok(!existsSync(join(dir, 'no.png')), 'no PNG written');
  });

  void test('train: --batch 0 and --lr -1 are usage errors', async () => {
    const out = join(dir, 'never-bad');
    const rs: Result[] = [];
    for (const a of [
      ['--batch', '0'],
      ['--lr', '-1'],
    ]) {
      rs.push(
        await sumiInProcess(['train', '--data', 'mnist', '--config', config, '--out', out, ...a]),
      );
    }
    assertCleanError(
      rs[0]!,
      2,
      /^sumi train: --batch: 'batchSize' must be an integer >= 1, got 0\n/,
    );
    assertCleanError(rs[1]!, 2, /^sumi train: --lr: 'lr' must be a number >= 0, got -1\n/);
    assert.ok(!existsSync(out), 'nothing written');
  });

  void test(
    '--backend webgpu without a Vulkan loader: one line naming the fix, no Dawn warning',
    { skip: vulkanLoaderFound() ? 'this machine has a Vulkan loader' : false },
    async () => {
      const r = await sumi(['sample', '--model', run, '--backend', 'webgpu', '--n', '1']);
      assertCleanError(
        r,
        1,
        /^sumi sample: backend webgpu: no WebGPU adapter \(no Vulkan loader\); install a Vulkan driver: sudo bash \.\.\/shared\/tools\/install-vulkan-cpu\.sh .*mesa-vulkan-drivers.*\n$/,
      );
    },
  );

  void test(
    '--backend webgpu with a Vulkan loader but no driver: the last line names the fix',
    {
      skip:
        process.platform === 'linux' && vulkanLoaderFound()
          ? false
          : 'needs the Vulkan loader on Linux (the test above runs without one)',
    },
    async () => {
      // The loader finds no driver when its driver list names a file that does not exist.
      const none = join(dir, 'no-such-driver.json');
      const r = await sumi(
        [
          'sample',
          '--model',
          join(ROOT, 'models', 'mnist-small'),
          '--backend',
          'webgpu',
          '--out',
          join(dir, 'never.png'),
        ],
        { VK_ICD_FILENAMES: none, VK_DRIVER_FILES: none },
      );
      assert.equal(r.code, 1, r.stderr);
      const last = r.stderr.trimEnd().split('\n').at(-1)!;
      assert.match(
        last,
        /^sumi sample: backend webgpu: .*no WebGPU adapter.*; install a Vulkan driver: sudo bash \.\.\/shared\/tools\/install-vulkan-cpu\.sh .*mesa-vulkan-drivers and libvulkan1 packages$/,
      );
      assert.ok(!existsSync(join(dir, 'never.png')), 'no PNG written');
    },
  );

  void test('train: unknown dataset, missing folder, unreadable image, unknown preset or option', async () => {
    const images = join(dir, 'images');
    await mkdir(images, { recursive: true });
    await cp(join(dir, 'grid-ddim.png'), join(images, 'a.png'));
    await writeFile(join(images, 'b.png'), 'not an image');
    const out = join(dir, 'never');
    const rs = await Promise.all([
      sumi(['train', '--data', 'nope', '--config', config, '--out', out]),
      sumi(['train', '--data', './no/such/folder', '--config', config, '--out', out]),
      sumi(['train', '--data', images, '--config', config, '--out', out]),
      sumi(['train', '--data', 'mnist', '--preset', 'no-such-preset', '--out', out]),
      sumi(['train', '--data', 'mnist', '--config', config, '--out', out, '--bogus']),
      sumi(['train', '--data', 'mnist', '--out', out]),
    ]);
    assertCleanError(
      rs[0],
      1,
      /^sumi train: unknown dataset 'nope': expected mnist, mnist-full, fashion-mnist, emoji or the path of a folder/,
    );
    assertCleanError(
      rs[1],
      1,
      /^sumi train: dataset folder '\.\/no\/such\/folder' does not exist\n$/,
    );
    assertCleanError(rs[2], 1, /^sumi train: .*b\.png: not a PNG or JPEG file/);
    assertCleanError(
      rs[3],
      1,
      /^sumi train: unknown preset 'no-such-preset' \(available: .*mnist-small/,
    );
    assertCleanError(rs[4], 2, /^sumi train: unknown option '--bogus'/);
    assertCleanError(rs[5], 2, /--preset <name> or --config <file> is required/);
  });

  void test('demo samples the shipped models/mnist-small into a grid drawn at twice the size', async () => {
    const png = join(dir, 'demo.png');
    const r = await sumi(['demo', '--n', '4', '--steps', '2', '--out', png]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /4 images, dpmpp-2m 2 steps/);
    const img = decodePng(readFileSync(png));
    // 2 × 2 digits of 28 × 28 drawn 56 × 56, 2 pixels apart and around.
    assert.deepEqual([img.width, img.height, img.channels], [2 * 58 + 2, 2 * 58 + 2, 1]);
  });

  void test('demo without its model says how to train it; --verbose shows the stack; unknown command', async () => {
    const rs = await Promise.all([
      sumi(['demo', '--model', join(dir, 'no-model'), '--out', join(dir, 'never.png')]),
      sumi(['sample', '--model', join(dir, 'no-such-dir'), '--verbose']),
      sumi(['frobnicate']),
    ]);
    assertCleanError(
      rs[0],
      1,
      /^sumi demo: model folder '.*no-model' does not exist \(sumi demo --train trains it into /,
    );
    assert.ok(!existsSync(join(dir, 'never.png')), 'no PNG written');
    assert.equal(rs[1].code, 1);
    assert.match(rs[1].stderr, STACK);
    assert.equal(rs[2].code, 2);
    assert.match(rs[2].stderr, /unknown command 'frobnicate'/);
  });
});
