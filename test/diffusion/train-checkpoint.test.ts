/**
 * Checkpoints survive crashes: a save that fails after some files are written, a crash between
 * the two renames of a save, and a child process killed with SIGKILL in the middle of its save
 * loop all leave a complete checkpoint that loads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  findCheckpoint,
  loadPipeline,
  readTrainerState,
  resolveTrainConfig,
  runTraining,
  type TrainConfig,
  Trainer,
  writeCheckpointDir,
} from '../../src/diffusion/index.js';
import { TINY_UNET, trainFixture } from './train-setup.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TRAIN = { data: 'mnist', steps: 1000, batchSize: 4, lr: 1e-3, warmupSteps: 0 };

const fx = trainFixture('sumi-ckpt-');

function config(): TrainConfig {
  return resolveTrainConfig({ model: TINY_UNET, scheduler: {}, train: TRAIN }, fx.mnist8);
}

/** Loads the last checkpoint of `out` into a fresh trainer and for sampling; returns its step. */
async function assertLoads(out: string): Promise<number> {
  const ckpt = await findCheckpoint(out);
  assert.ok(ckpt !== null, `no complete checkpoint in ${out}`);
  const state = await readTrainerState(ckpt);
  const trainer = new Trainer(state.config, fx.mnist8);
  await trainer.loadCheckpoint(ckpt, state);
  trainer.dispose();
  const p = await loadPipeline(out);
  assert.equal(p.weights, 'ema');
  assert.equal(p.info?.step, state.step);
  return state.step;
}

async function tmpDirsIn(out: string): Promise<string[]> {
  return (await readdir(out)).filter((n) => n.startsWith('checkpoint.tmp-'));
}

void describe('atomic checkpoints', () => {
  void test('a save that fails after 3 files leaves the previous checkpoint, no temporaries', async () => {
    const out = join(fx.dir, 'inject');
    const trainer = new Trainer(config(), fx.mnist8);
    await runTraining(trainer, {
      outDir: out,
      stopAt: 2,
      settings: { saveEvery: 0, sampleEvery: 0 },
    });
    let written = 0;
    await assert.rejects(
      runTraining(trainer, {
        outDir: out,
        stopAt: 4,
        settings: { saveEvery: 0, sampleEvery: 0 },
        checkpoint: {
          afterFile: () => {
            if (++written === 3) throw new Error('disk full (injected)');
          },
        },
      }),
      /disk full \(injected\)/,
    );
    trainer.dispose();
    assert.equal(written, 3);
    assert.equal(await assertLoads(out), 2);
    assert.deepEqual(await tmpDirsIn(out), []);
  });

  void test('a crash between the two renames: checkpoint.old is found, the next save cleans up', async () => {
    const out = join(fx.dir, 'renames');
    const trainer = new Trainer(config(), fx.mnist8);
    await runTraining(trainer, {
      outDir: out,
      stopAt: 1,
      settings: { saveEvery: 0, sampleEvery: 0 },
    });
    // The state right after `checkpoint` was renamed away and before the new one took its place.
    await rename(join(out, 'checkpoint'), join(out, 'checkpoint.old'));
    assert.equal(await findCheckpoint(out), join(out, 'checkpoint.old'));
    assert.equal(await assertLoads(out), 1);
    await trainer.trainStep();
    await writeCheckpointDir(out, await trainer.checkpointFiles());
    trainer.dispose();
    assert.equal(await findCheckpoint(out), join(out, 'checkpoint'));
    assert.equal(existsSync(join(out, 'checkpoint.old')), false);
    assert.equal(await assertLoads(out), 2);
  });

  void test('SIGKILL during the save loop of a child process never loses the checkpoint', async () => {
    const out = join(fx.dir, 'killed');
    // The child trains with a checkpoint after every step and reports each file it writes.
    const child = `
      const e = await import(${JSON.stringify(join(ROOT, 'src/engine/index.ts'))});
      const { loadDataset } = await import(${JSON.stringify(join(ROOT, 'src/data/index.ts'))});
      const d = await import(${JSON.stringify(join(ROOT, 'src/diffusion/index.ts'))});
      e.setDefaultBackend(e.cpuBackend());
      const ds = loadDataset('mnist', { size: 8 });
      const out = process.env.SUMI_TEST_OUT;
      const ckpt = await d.findCheckpoint(out);
      let trainer;
      if (ckpt === null) {
        trainer = new d.Trainer(d.resolveTrainConfig(${JSON.stringify({ model: TINY_UNET, scheduler: {}, train: TRAIN })}, ds), ds);
      } else {
        const state = await d.readTrainerState(ckpt);
        trainer = new d.Trainer(state.config, ds);
        await trainer.loadCheckpoint(ckpt, state);
      }
      await d.runTraining(trainer, {
        outDir: out,
        settings: { saveEvery: 1, sampleEvery: 0, logEvery: 1 },
        checkpoint: { afterFile: (p) => { process.stdout.write('file ' + trainer.step + ' ' + p + '\\n'); } },
        onCheckpoint: (c) => { process.stdout.write('saved ' + c.step + '\\n'); },
      });
    `;
    /** Runs the child; `onLine` sees each line of its output and may SIGKILL it. */
    const runAndKill = (
      onLine: (line: string, saves: number, kill: () => void) => void,
    ): Promise<void> =>
      new Promise((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], {
          cwd: ROOT,
          env: { ...process.env, SUMI_TEST_OUT: out },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const kill = (): void => {
          if (p.exitCode === null && !p.killed) p.kill('SIGKILL');
        };
        let saves = 0;
        let stderr = '';
        p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        createInterface({ input: p.stdout }).on('line', (line) => {
          if (line.startsWith('saved ')) saves++;
          onLine(line, saves, kill);
        });
        p.on('error', reject);
        p.on('exit', (code, signal) => {
          if (signal === 'SIGKILL') resolve();
          else reject(new Error(`child exited with ${code}: ${stderr}`));
        });
      });

    // 1. In the middle of writing a checkpoint's files (the 4th file of the 2nd save).
    let files = 0;
    await runAndKill((line, saves, kill) => {
      if (saves >= 1 && line.startsWith('file ') && ++files === 4) kill();
    });
    const step1 = await assertLoads(out);
    assert.ok(step1 >= 1, `checkpoint step ${step1} after the first kill`);
    // 2. Right after the last file of a save, before its renames.
    await runAndKill((line, saves, kill) => {
      if (saves >= 1 && line.endsWith('trainer_state.json')) kill();
    });
    const step2 = await assertLoads(out);
    assert.ok(step2 >= step1, `step ${step2} after ${step1}`);
    // 3. Right after a save completed (while checkpoint.old is being removed).
    await runAndKill((line, saves, kill) => {
      if (saves >= 2 && line.startsWith('saved ')) kill();
    });
    const step3 = await assertLoads(out);
    // 4. At a random moment once the resumed child is running.
    let armed = false;
    await runAndKill((_line, _saves, kill) => {
      if (armed) return;
      armed = true;
      setTimeout(kill, Math.floor(Math.random() * 400));
    });
    const step4 = await assertLoads(out);
    assert.ok(step4 >= step3, `step ${step4} after ${step3}`);
  });
});
