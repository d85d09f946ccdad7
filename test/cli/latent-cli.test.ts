/**
 * `sumi train --vae` and `sumi sample` on a latent model: the preset latent-small on gray MNIST
 * without a vae is refused (one line naming both channel counts, nothing written); a tiny latent
 * run trains, resumes and samples 8×8 pixels (and a decoded trajectory) through its vae/; a U-Net
 * whose in_channels are not the vae's, a vae without scaling_factor, a corrupt cache and a named
 * cache of another vae are each one line, exit 1, with nothing on disk changed.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { decodePng } from '../../src/data/index.js';
import { sha256Hex } from '../../src/diffusion/index.js';
import { TINY_LATENT_UNET, writeImageFolder, writeTinyKlVae } from '../diffusion/latent-setup.js';
import { assertCleanError, sumiInProcess as sumi } from './run-sumi.js';

let dir = '';
const file = (name: string): string => join(dir, name);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sumi-latent-cli-'));
  await writeImageFolder(file('images'));
  await writeTinyKlVae(file('vae'));
  await writeTinyKlVae(file('vae-b'), { seed: 9 });
  await writeFile(
    file('tiny.json'),
    JSON.stringify({ model: TINY_LATENT_UNET, scheduler: { num_train_timesteps: 100 } }),
  );
  await writeFile(
    file('wide.json'),
    JSON.stringify({ model: { ...TINY_LATENT_UNET, in_channels: 4, out_channels: 4 } }),
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TRAIN = ['--steps', '3', '--batch', '4', '--quiet', '--sample-every', '0'];

/** `sumi train` of the image folder on `vae`'s latents into `out` (3 short steps). */
function trainArgs(out: string, vae: string, config = file('tiny.json')): string[] {
  return [
    'train',
    '--data',
    file('images'),
    '--config',
    config,
    '--vae',
    vae,
    '--out',
    out,
    ...TRAIN,
  ];
}

function oneLine(stderr: string): void {
  assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
}

void describe('sumi train --vae, sumi sample of a latent model', () => {
  void test('latent-small without --vae is refused, naming both channel counts', async () => {
    const out = file('refused');
    const r = await sumi([
      'train',
      '--preset',
      'latent-small',
      '--data',
      'mnist',
      '--out',
      out,
      '--steps',
      '1',
    ]);
    assertCleanError(r, 1, /in_channels is 4 but mnist images have 1 channel.*pass --vae DIR/);
    oneLine(r.stderr);
    assert.ok(!existsSync(join(out, 'checkpoint')), 'no checkpoint written');
  });

  void test('trains, resumes and samples 8x8 pixels through vae/', async () => {
    const out = file('run');
    const base = trainArgs(out, file('vae'));
    const a = await sumi([...base, '--stop-at', '2']);
    assert.equal(a.code, 0, a.stderr);
    assert.ok(existsSync(join(out, 'latents.safetensors')), 'the latent cache');
    const b = await sumi([...base, '--resume']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /trained to step 3\/3/);
    const s = await sumi([
      'sample',
      '--model',
      out,
      '--n',
      '4',
      '--steps',
      '3',
      '--sampler',
      'dpmpp-2m',
      '--out',
      file('s.png'),
      '--trajectory',
      file('t.gif'),
    ]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /decoded by its AutoencoderKL/);
    const png = decodePng(await readFile(file('s.png')));
    // A 2×2 grid of 8×8 images with 2-pixel borders.
    assert.deepEqual([png.width, png.height], [22, 22]);
    assert.ok(existsSync(file('t.gif')), 'the decoded trajectory');
    // An f16 export names its own vae bytes in sumi.json, not the f32 file the run trained on.
    const exported = file('exported');
    const e = await sumi(['export', '--model', out, '--out', exported, '--dtype', 'f16']);
    assert.equal(e.code, 0, e.stderr);
    const info = JSON.parse(await readFile(join(exported, 'sumi.json'), 'utf8')) as {
      latent: { vaeSha256: string };
    };
    const vaeBytes = await readFile(join(exported, 'vae', 'diffusion_pytorch_model.safetensors'));
    const trained = JSON.parse(await readFile(join(out, 'checkpoint', 'sumi.json'), 'utf8')) as {
      latent: { vaeSha256: string };
    };
    assert.equal(info.latent.vaeSha256, sha256Hex(vaeBytes));
    assert.notEqual(info.latent.vaeSha256, trained.latent.vaeSha256, 'f16 bytes differ from f32');
    const other = await sumi([...base, '--resume', '--vae', file('vae-b'), '--steps', '4']);
    assertCleanError(
      other,
      2,
      /--vae: the checkpoint trains on the latents of .*holds other weights/,
    );
  });

  void test("a U-Net whose in_channels are not the vae's latent channels is one line", async () => {
    const out = file('wide');
    const r = await sumi(trainArgs(out, file('vae'), file('wide.json')));
    assertCleanError(r, 1, /in_channels is 4 but the vae .* makes 2-channel latents/);
    oneLine(r.stderr);
    assert.ok(!existsSync(out), 'nothing written');
  });

  void test('a vae without scaling_factor is one line', async () => {
    const vae = await writeTinyKlVae(file('vae-nosf'));
    const cfg = JSON.parse(await readFile(join(vae, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    delete cfg.scaling_factor;
    await writeFile(join(vae, 'config.json'), JSON.stringify(cfg));
    const out = file('nosf');
    const r = await sumi(trainArgs(out, vae));
    assertCleanError(r, 1, /config\.json: no scaling_factor/);
    oneLine(r.stderr);
    assert.ok(!existsSync(out), 'nothing written');
  });

  void test('a corrupt cache and a named cache of another vae are one line each, left as they were', async () => {
    const cache = file('named.safetensors');
    const first = await sumi([
      ...trainArgs(file('named-a'), file('vae')),
      '--latent-cache',
      cache,
      '--steps',
      '1',
    ]);
    assert.equal(first.code, 0, first.stderr);
    const bytes = await readFile(cache);
    const other = await sumi([
      ...trainArgs(file('named-b'), file('vae-b')),
      '--latent-cache',
      cache,
    ]);
    assertCleanError(
      other,
      1,
      /a latent cache of other images or another vae \(vae weights sha256/,
    );
    oneLine(other.stderr);
    assert.ok((await readFile(cache)).equals(bytes), 'the named cache is unchanged');
    await writeFile(cache, bytes.subarray(0, bytes.length - 100));
    const cut = await sumi([...trainArgs(file('named-c'), file('vae')), '--latent-cache', cache]);
    assertCleanError(cut, 1, /not a usable latent cache/);
    oneLine(cut.stderr);
    assert.equal((await readFile(cache)).length, bytes.length - 100, 'the cut cache is unchanged');
    assert.ok(!existsSync(join(file('named-c'), 'checkpoint')), 'no checkpoint written');
  });
});
