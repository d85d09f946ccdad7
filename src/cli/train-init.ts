/**
 * `sumi train --init DIR`: a new run that starts from a model's weights (diffusion/trainer/init.ts)
 * instead of initial ones. Its option, the options it does not go with, and the library's
 * InitInputError (DIR missing, not a pipeline, weights or configs that do not fit) as one line
 * with exit 2.
 */
import { InitInputError } from '../diffusion/index.js';
import { type Args, CliError, type OptionSpec } from './args.js';
import { EXIT } from './common.js';

export const INIT_OPTION: OptionSpec = {
  name: 'init',
  kind: 'string',
  arg: 'DIR',
  help:
    "start from this model's weights (a pipeline folder as 'sumi export' writes, or a run " +
    'folder): its model, scheduler, conditioning and vae; the optimizer starts fresh',
};

export const INIT_NOTE =
  'Continuing a model: --init DIR starts a new run from the weights of the pipeline folder DIR\n' +
  "(its EMA weights when it has them): the denoiser, a text model's text encoder, their EMA.\n" +
  "DIR gives the model, scheduler and text encoder configs, the conditioning and a latent model's\n" +
  'vae; a --preset/--config gives the "train" section, and any model, scheduler or text encoder\n' +
  "key it gives must be DIR's. The optimizer, step count and lr schedule (warmup included) start\n" +
  'at step 0. --resume needs no --init; one given must hold the same weights. See docs/training.md.';

/** The --init folder (undefined: none), refused beside the options that train on a --base. */
export function initOption(args: Args): string | undefined {
  const dir = args.str('init');
  if (dir === undefined) return undefined;
  const other = (['lora-rank', 'controlnet', 'dreambooth', 'base'] as const).find((n) =>
    args.has(n),
  );
  if (other !== undefined) {
    throw new CliError(
      `--init starts a new run from a model's weights; --${other} adapts a --base model: give one`,
      EXIT.usage,
    );
  }
  return dir;
}

/** An InitInputError of the library as the CLI's one-line exit 2; others unchanged. */
export function initInputError(e: unknown): unknown {
  return e instanceof InitInputError ? new CliError(`--init: ${e.message}`, EXIT.usage) : e;
}
