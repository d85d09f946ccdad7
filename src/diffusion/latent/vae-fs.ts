/**
 * Reading a diffusers vae folder (AutoencoderKL or VQModel: config.json and
 * diffusion_pytorch_model.safetensors) for latent diffusion, with the sha256 of its weights and
 * the files' bytes (a latent run's checkpoint carries a copy of the folder).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { Backend } from '../../engine/index.js';
import { CONFIG_NAME, saveModel, WEIGHTS_NAME, writeTextAtomic } from '../../nn/models/index.js';
import {
  LATENT_VAE_DIR,
  LatentDecoder,
  LatentError,
  type LatentSpec,
  type LatentVae,
  parseVaeConfig,
  vaeFromBytes,
} from './vae.js';
import { isFile } from '../files.js';

export { LATENT_VAE_DIR };

/** A vae folder, loaded. */
export interface LoadedVae {
  dir: string;
  vae: LatentVae;
  spec: LatentSpec;
  /** config.json as read (every key the file has). */
  config: Record<string, unknown>;
  /** sha256 (hex) of the weights file. */
  sha256: string;
  /** The folder's two files, as read. */
  files: { config: Uint8Array; weights: Uint8Array };
}

/** sha256 (hex) of bytes. */
export function sha256Hex(...parts: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new LatentError(
      `${path}: ${code === 'ENOENT' ? `no ${what}` : `cannot read (${e instanceof Error ? e.message : String(e)})`}`,
    );
  }
}

/**
 * The folder holding the autoencoder's config.json: `dir` itself, its vae/ (a pipeline folder),
 * or checkpoint/vae/ (a 'sumi train-vae' or latent 'sumi train' output folder).
 */
async function vaeFolder(dir: string): Promise<string> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a folder');
  } catch {
    throw new LatentError(`vae folder '${dir}' does not exist`);
  }
  for (const d of [dir, join(dir, LATENT_VAE_DIR), join(dir, 'checkpoint', LATENT_VAE_DIR)]) {
    if (await isFile(join(d, CONFIG_NAME))) return d;
  }
  return dir;
}

/**
 * Loads the autoencoder of `dir` (or of its vae/ or checkpoint/vae/) (eval mode) on `backend`. A folder that is not an AutoencoderKL
 * or VQModel, or whose config.json has no scaling_factor, is a LatentError naming the file.
 */
export async function loadVae(given: string, opts: { backend?: Backend } = {}): Promise<LoadedVae> {
  const dir = await vaeFolder(given);
  const configPath = join(dir, CONFIG_NAME);
  const configBytes = await readBytes(
    configPath,
    `${CONFIG_NAME} (a vae folder holds config.json and ${WEIGHTS_NAME})`,
  );
  parseVaeConfig(configBytes, dir); // the config's errors before a missing weights file's
  const weights = await readBytes(join(dir, WEIGHTS_NAME), WEIGHTS_NAME);
  const { vae, spec, config } = await vaeFromBytes(configBytes, weights, dir);
  if (opts.backend !== undefined) await vae.to({ backend: opts.backend });
  return {
    dir,
    vae,
    spec,
    config,
    sha256: sha256Hex(weights),
    files: { config: configBytes, weights },
  };
}

/** The decoder of a loaded vae folder. */
export function vaeDecoder(v: LoadedVae): LatentDecoder {
  return new LatentDecoder(v.vae, v.spec);
}

/** The file beside a trained autoencoder's vae/ folder that describes its run. */
const RUN_INFO = 'sumi.json';

/**
 * Writes the autoencoder of `from` (any folder `loadVae` reads: a `sumi train-vae` output, a
 * pipeline's vae/, a vae folder) to `to` as a standalone diffusers folder, config.json and the
 * weights at its root as released autoencoders are (`AutoencoderKL.from_pretrained(to)`), in
 * `dtype`. The training run's sumi.json, when there is one beside the vae folder, is copied with
 * the dtype and the sha256 of the weights written. Returns the sha256.
 */
export async function exportVae(
  from: string,
  to: string,
  opts: { dtype?: 'F32' | 'F16' } = {},
): Promise<{ loaded: LoadedVae; sha256: string }> {
  const loaded = await loadVae(from);
  const dtype = opts.dtype ?? 'F32';
  await mkdir(to, { recursive: true });
  await saveModel(loaded.vae, to, { dtype });
  const sha256 = sha256Hex(new Uint8Array(await readFile(join(to, WEIGHTS_NAME))));
  const runInfo = join(dirname(loaded.dir), RUN_INFO);
  if (await isFile(runInfo)) {
    let info: unknown;
    try {
      info = JSON.parse(await readFile(runInfo, 'utf8'));
    } catch (e) {
      throw new LatentError(`${runInfo}: not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    const out = {
      ...(info as Record<string, unknown>),
      weightsDtype: dtype,
      weightsSha256: sha256,
    };
    await writeTextAtomic(join(to, RUN_INFO), `${JSON.stringify(out, null, 2)}\n`);
  }
  return { loaded, sha256 };
}
