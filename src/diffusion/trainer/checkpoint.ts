/**
 * Checkpoints written so that killing the process at any instant leaves a complete one on disk.
 *
 * A training run's output directory holds `checkpoint/`, a diffusers DDPMPipeline folder plus the
 * trainer's state:
 *
 *   checkpoint/model_index.json                          diffusers' pipeline index
 *   checkpoint/unet/config.json                          UNet2DModel config
 *   checkpoint/unet/diffusion_pytorch_model.safetensors  the trained weights (F32)
 *   checkpoint/unet_ema/...                              the EMA weights, same layout (with EMA)
 *   checkpoint/scheduler/scheduler_config.json           DDPMScheduler config (schedule, prediction)
 *   checkpoint/sumi.json                                 what sampling needs: classes, image size
 *   checkpoint/optimizer.safetensors                     AdamW moments and per-parameter steps
 *   checkpoint/trainer_state.json                        step, config, EMA step, RNG and data position
 *
 * A LoRA run's checkpoint holds `unet_lora/` (and `unet_lora_ema/`) with the adapters instead of
 * `unet/`, and `pytorch_lora_weights.safetensors` (diffusers' LoRA file) instead of
 * model_index.json and sumi.json.
 *
 * Saving (`writeCheckpointDir`): every file goes into a fresh `checkpoint.tmp-*` directory and is
 * fsynced; then the current `checkpoint` is renamed to `checkpoint.old`, the new directory renamed
 * to `checkpoint`, and only then is `checkpoint.old` removed. A directory named `checkpoint` or
 * `checkpoint.old` is therefore always complete, and at every instant at least one exists once a
 * first save has finished. `findCheckpoint` prefers `checkpoint` and falls back to
 * `checkpoint.old` (a crash between the two renames).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const CHECKPOINT_DIR = 'checkpoint';
export const PREVIOUS_DIR = 'checkpoint.old';
const TMP_PREFIX = 'checkpoint.tmp-';

export const UNET_DIR = 'unet';
export const EMA_DIR = 'unet_ema';
/** The adapters of a LoRA run (its checkpoint holds no unet/: the base model stays where it is). */
export const UNET_LORA_DIR = 'unet_lora';
/** A ControlNet run's ControlNet (diffusers' ControlNet folder; the base stays where it is). */
export const CONTROLNET_DIR = 'controlnet';
/** The adapters' file inside it (peft's name; parameter names without the `unet.` prefix). */
export const LORA_ADAPTER_FILE = 'adapter_model.safetensors';
export const SCHEDULER_CONFIG = join('scheduler', 'scheduler_config.json');
export const MODEL_INDEX = 'model_index.json';
export const SUMI_INFO = 'sumi.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE = 'trainer_state.json';

/** One file of a checkpoint: its path inside the checkpoint directory and its bytes. */
export interface CheckpointFile {
  path: string;
  bytes: Uint8Array;
}

export interface WriteCheckpointOptions {
  /**
   * Called after each file is written and fsynced, with its relative path (progress reporting;
   * tests throw from it to simulate a crash in the middle of a save).
   */
  afterFile?: (path: string) => void | Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** fsync a directory so that renames and new entries in it survive a power loss (best effort). */
async function syncDir(path: string): Promise<void> {
  try {
    const h = await open(path, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Not every platform can fsync a directory; the files themselves are synced.
  }
}

async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const h = await open(path, 'wx', 0o644);
  try {
    await h.writeFile(bytes);
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Removes leftovers of interrupted saves (`checkpoint.tmp-*`). */
export async function removeStaleTemporaries(outDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(outDir);
  } catch {
    return;
  }
  for (const n of names) {
    if (n.startsWith(TMP_PREFIX)) await rm(join(outDir, n), { recursive: true, force: true });
  }
}

/**
 * Writes `files` as the new `<outDir>/checkpoint` atomically (see the module comment). Returns
 * the checkpoint directory. On failure the temporary directory is removed and the previous
 * checkpoint is untouched.
 */
export async function writeCheckpointDir(
  outDir: string,
  files: readonly CheckpointFile[],
  opts: WriteCheckpointOptions = {},
): Promise<string> {
  await mkdir(outDir, { recursive: true });
  await removeStaleTemporaries(outDir);
  const tmp = join(outDir, `${TMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(tmp);
    const dirs = new Set<string>([tmp]);
    for (const f of files) {
      const path = join(tmp, f.path);
      const parent = dirname(path);
      if (!dirs.has(parent)) {
        await mkdir(parent, { recursive: true });
        dirs.add(parent);
      }
      await writeSynced(path, f.bytes);
      await opts.afterFile?.(f.path);
    }
    // Subdirectories first, then the checkpoint directory itself.
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) await syncDir(d);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const current = join(outDir, CHECKPOINT_DIR);
  const previous = join(outDir, PREVIOUS_DIR);
  if (await exists(current)) {
    // A checkpoint.old beside a checkpoint is older than it (a crash after the second rename).
    await rm(previous, { recursive: true, force: true });
    await rename(current, previous);
    await syncDir(outDir);
  }
  await rename(tmp, current);
  await syncDir(outDir);
  await rm(previous, { recursive: true, force: true });
  return current;
}

/**
 * The last complete checkpoint under a training output directory: `checkpoint`, or
 * `checkpoint.old` when a save was interrupted between its renames; null when there is none.
 */
export async function findCheckpoint(outDir: string): Promise<string | null> {
  for (const name of [CHECKPOINT_DIR, PREVIOUS_DIR]) {
    const dir = join(outDir, name);
    if (await exists(join(dir, TRAINER_STATE))) return dir;
  }
  return null;
}

/** UTF-8 bytes of a JSON value, two-space indented with a final newline. */
export function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
}
