/**
 * A ControlNet folder as diffusers writes and reads it (`ControlNetModel.save_pretrained`,
 * `from_pretrained`): config.json and diffusion_pytorch_model.safetensors. The model itself:
 * controlnet.ts.
 */
import { join } from 'node:path';

import { loadModule } from '../state-io.js';
import { ConfigError } from './config.js';
import { ControlNetModel } from './controlnet.js';
import { CONFIG_NAME, WEIGHTS_NAME } from './create.js';
import { readModelConfig } from './io.js';

/**
 * Builds the ControlNet that `<dir>/config.json` describes and loads its weights; a config of
 * another class, or a missing, unexpected or mis-shaped weight, is an error naming the file. The
 * model comes back in eval mode.
 */
export async function loadControlNet(dir: string): Promise<ControlNetModel> {
  const config = await readModelConfig(dir);
  const path = join(dir, CONFIG_NAME);
  if (config._class_name !== 'ControlNetModel') {
    throw new ConfigError(
      `${path}: expected a ControlNetModel, found ${JSON.stringify(config._class_name ?? null)}`,
    );
  }
  let model: ControlNetModel;
  try {
    model = new ControlNetModel(config);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${path}: ${e.message}`);
    throw e;
  }
  await loadModule(model, join(dir, WEIGHTS_NAME));
  return model.eval();
}
