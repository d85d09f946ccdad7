/**
 * Classifier folders: what `sumi train-classifier` writes and classifier guidance loads.
 *
 *   <dir>/classifier/config.json                           EncoderClassifierModel config
 *   <dir>/classifier/diffusion_pytorch_model.safetensors   the weights
 *   <dir>/scheduler/scheduler_config.json                  the DDPM schedule (noise-aware only)
 *   <dir>/sumi.json                                        classes, image size, held-out accuracy
 *
 * `<dir>` is a checkpoint (with the trainer's files besides) or an exported folder; a training
 * output directory (its `checkpoint/`) and a bare classifier folder (config.json + weights) load
 * too.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import type { Backend, FloatDType } from '../engine/index.js';
import {
  CONFIG_NAME,
  ConfigError,
  EncoderClassifierModel,
  loadModel,
  saveModel,
  writeTextAtomic,
} from '../nn/models/index.js';
import { createScheduler } from './samplers/index.js';
import { CHECKPOINT_DIR, PREVIOUS_DIR, SCHEDULER_CONFIG, SUMI_INFO } from './trainer/checkpoint.js';
import { CLASSIFIER_DIR } from './trainer/classifier-config.js';
import type { ClassifierInfo } from './trainer/classifier-trainer.js';
import { isFile, readJsonFile } from './files.js';

export class ClassifierDirError extends Error {
  override name = 'ClassifierDirError';
}

export interface LoadedClassifier {
  classifier: EncoderClassifierModel;
  /** sumi.json (null for a bare classifier folder). */
  info: ClassifierInfo | null;
  /** The schedule a noise-aware classifier was trained on (null when the folder has none). */
  schedulerConfig: Record<string, unknown> | null;
  /** The folder the parts were found in. */
  root: string;
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const json = await readJsonFile(path, ClassifierDirError);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ClassifierDirError(`${path}: expected a JSON object`);
  }
  return json as Record<string, unknown>;
}

/** The folder holding classifier/ (or config.json) among dir, dir/checkpoint, dir/checkpoint.old. */
async function findRoot(dir: string): Promise<{ root: string; modelDir: string }> {
  for (const root of [dir, join(dir, CHECKPOINT_DIR), join(dir, PREVIOUS_DIR)]) {
    if (await isFile(join(root, CLASSIFIER_DIR, CONFIG_NAME))) {
      return { root, modelDir: join(root, CLASSIFIER_DIR) };
    }
  }
  if (await isFile(join(dir, CONFIG_NAME))) return { root: dir, modelDir: dir };
  throw new ClassifierDirError(
    `${dir}: not a classifier folder (found no classifier/config.json, checkpoint/classifier/` +
      'config.json or config.json)',
  );
}

/** Loads a classifier folder (see the module comment), in eval mode. */
export async function loadClassifier(
  dir: string,
  opts: { backend?: Backend; dtype?: FloatDType } = {},
): Promise<LoadedClassifier> {
  const { root, modelDir } = await findRoot(dir);
  let classifier: EncoderClassifierModel;
  try {
    classifier = await loadModel(modelDir, { as: EncoderClassifierModel, ...opts });
  } catch (e) {
    if (e instanceof ConfigError && !e.message.includes(modelDir)) {
      throw new ClassifierDirError(`${join(modelDir, CONFIG_NAME)}: ${e.message}`);
    }
    throw e;
  }
  const infoPath = join(root, SUMI_INFO);
  const info = (await isFile(infoPath))
    ? ((await readJsonObject(infoPath)) as unknown as ClassifierInfo)
    : null;
  if (info !== null && info.format !== 'sumi-classifier') {
    throw new ClassifierDirError(`${infoPath}: not a classifier's sumi.json`);
  }
  const schedPath = join(root, SCHEDULER_CONFIG);
  const schedulerConfig = (await isFile(schedPath)) ? await readJsonObject(schedPath) : null;
  return { classifier, info, schedulerConfig, root };
}

/**
 * Why a noise-aware classifier does not fit a diffusion model's schedule (another T, or ᾱ that
 * differ by more than 1e-6 somewhere), or null when it fits. A clean classifier, or one without
 * a recorded schedule, always fits.
 */
export function classifierScheduleMismatch(
  loaded: Pick<LoadedClassifier, 'classifier' | 'schedulerConfig'>,
  alphasCumprod: Float64Array,
): string | null {
  if (!loaded.classifier.config.time_conditioned || loaded.schedulerConfig === null) return null;
  const cfg = { ...loaded.schedulerConfig };
  delete cfg._class_name;
  delete cfg._diffusers_version;
  const own = createScheduler('DDPMScheduler', cfg).alphasCumprod;
  if (own.length !== alphasCumprod.length) {
    return `the classifier was trained on a ${own.length}-step schedule, the model has ${alphasCumprod.length} steps`;
  }
  const worst = own.reduce((m, a, i) => Math.max(m, Math.abs(a - alphasCumprod[i]!)), 0);
  return worst > 1e-6
    ? `the classifier was trained on another noise schedule (ᾱ differs by up to ${worst.toExponential(2)})`
    : null;
}

/**
 * Writes a sample-ready copy of a classifier folder (classifier/, scheduler/, sumi.json; no
 * trainer state) with its weights stored as `dtype`.
 */
export async function exportClassifier(
  from: string,
  to: string,
  opts: { dtype?: 'F32' | 'F16' } = {},
): Promise<LoadedClassifier> {
  const loaded = await loadClassifier(from);
  await mkdir(to, { recursive: true });
  await saveModel(loaded.classifier, join(to, CLASSIFIER_DIR), { dtype: opts.dtype ?? 'F32' });
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  if (loaded.schedulerConfig !== null) {
    await mkdir(join(to, 'scheduler'), { recursive: true });
    await writeTextAtomic(join(to, SCHEDULER_CONFIG), json(loaded.schedulerConfig));
  }
  if (loaded.info !== null) await writeTextAtomic(join(to, SUMI_INFO), json(loaded.info));
  return loaded;
}
