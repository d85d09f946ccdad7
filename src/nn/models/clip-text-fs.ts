/**
 * A `text_encoder/` folder as transformers writes and reads it (`save_pretrained`,
 * `from_pretrained`): config.json and model.safetensors. The model itself: clip-text.ts.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { Generator } from '../../engine/index.js';
import { disposeAll } from '../state-dict.js';
import { loadTensors, saveModule } from '../state-io.js';
import {
  CLIP_TEXT_WEIGHTS_NAME,
  CLIPTextModel,
  type CLIPTextModelInput,
  resolveCLIPTextConfig,
} from './clip-text.js';
import { type LoadModelOptions, readModelConfig, writeTextAtomic } from './io.js';

/** A buffer that transformers before 4.31 saved with the weights; not a parameter. */
const POSITION_IDS = 'text_model.embeddings.position_ids';

const TORCH_DTYPES = { F32: 'float32', F16: 'float16', F64: 'float64' } as const;

export interface SaveCLIPTextOptions {
  /** How the weights are stored (default F32). */
  dtype?: keyof typeof TORCH_DTYPES;
}

/**
 * Saves a text encoder as transformers' `save_pretrained(dir)` does: model.safetensors (metadata
 * {format: pt}) first, then config.json, each written atomically.
 */
export async function saveCLIPTextModel(
  model: CLIPTextModel,
  dir: string,
  opts: SaveCLIPTextOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  await mkdir(dir, { recursive: true });
  await saveModule(model, join(dir, CLIP_TEXT_WEIGHTS_NAME), { dtype, metadata: { format: 'pt' } });
  await writeTextAtomic(join(dir, 'config.json'), model.configJson(TORCH_DTYPES[dtype]));
}

/**
 * Builds the text encoder that `<dir>/config.json` describes and loads `<dir>/model.safetensors`;
 * a bad config, or a missing, unexpected or mis-shaped weight, is an error naming the file. The
 * model comes back in eval mode, as from `from_pretrained`.
 */
export async function loadCLIPTextModel(
  dir: string,
  opts: LoadModelOptions = {},
): Promise<CLIPTextModel> {
  const raw = await readModelConfig(dir);
  // The initial weights are overwritten: a private stream leaves the shared one untouched.
  const model = new CLIPTextModel(
    resolveCLIPTextConfig(raw, join(dir, 'config.json')) as CLIPTextModelInput,
    { generator: new Generator(0) },
  );
  // Moved first, so that F64 weights load into float64 parameters without a float32 detour.
  if (opts.dtype !== undefined || opts.backend !== undefined) {
    await model.to({ dtype: opts.dtype, backend: opts.backend });
  }
  const path = join(dir, CLIP_TEXT_WEIGHTS_NAME);
  try {
    await stat(path);
  } catch {
    throw new Error(`${dir}: no ${CLIP_TEXT_WEIGHTS_NAME} (only safetensors weights are read)`);
  }
  const tensors = await loadTensors(path, { backend: model.parameters()[0]?.backend });
  try {
    tensors.get(POSITION_IDS)?.dispose();
    tensors.delete(POSITION_IDS);
    await model.loadStateDict(tensors, { source: path });
  } finally {
    disposeAll(tensors);
  }
  return model.eval();
}
