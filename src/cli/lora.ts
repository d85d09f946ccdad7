/**
 * LoRA files on the command line: `--lora FILE[:scale]` (repeatable) for the commands that load
 * a model, and `sumi lora merge`, which folds adapters into a model's weights and writes the
 * merged model folder.
 */
import { loadPipeline, savePipeline } from '../diffusion/index.js';
import {
  LoraError,
  type LoraNetwork,
  loraNetworkFromFile,
  type Module,
  readSafetensors,
} from '../nn/index.js';
import { type Args, CliError, type CommandSpec, type OptionSpec, UsageError } from './args.js';
import {
  checkOutFolderEmpty,
  commandGroup,
  defineCommand,
  EXIT,
  modelCopyArgs,
  modelCopyOptions,
  readOptionInput,
} from './common.js';

/** The `--lora` option of a command (read with `loraSpecs`, which takes every occurrence). */
export const LORA_OPTION: OptionSpec = {
  name: 'lora',
  kind: 'string',
  arg: 'FILE[:S]',
  help:
    "apply a LoRA file (diffusers' pytorch_lora_weights.safetensors) at scale S (default 1); " +
    'repeat for several',
};

/** One `--lora` value: the file and its scale s. */
export interface LoraSpec {
  path: string;
  scale: number;
}

/** `FILE:0.7` → (FILE, 0.7); a value without a numeric `:S` suffix is all path, scale 1. */
export function parseLoraSpec(value: string): LoraSpec {
  const m = /^(.+):([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$/.exec(value);
  if (m === null) {
    if (value === '') throw new UsageError('--lora needs a file');
    return { path: value, scale: 1 };
  }
  const scale = Number(m[2]);
  if (!Number.isFinite(scale)) throw new UsageError(`--lora ${value}: the scale is not finite`);
  return { path: m[1]!, scale };
}

/** Every `--lora` of the command line, in order. */
export function loraSpecs(args: Args): LoraSpec[] {
  const argv = args.parsed.argv;
  const out: LoraSpec[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--lora') {
      const v = argv[i + 1];
      if (v === undefined) throw new UsageError('--lora needs a value (FILE[:S])');
      out.push(parseLoraSpec(v));
      i++;
    } else if (a.startsWith('--lora=')) {
      out.push(parseLoraSpec(a.slice('--lora='.length)));
    }
  }
  return out;
}

/**
 * The LoRA networks of `specs` on `model`, attached with their scales (several stack: each adds
 * s·(α/r)·B A x). A file that cannot be read or does not fit the model is a CliError with exit
 * code 2 and one line naming the file and the keys or shapes at fault.
 */
export async function applyLoras(
  model: Module,
  specs: readonly LoraSpec[],
): Promise<LoraNetwork[]> {
  const nets: LoraNetwork[] = [];
  try {
    for (const spec of specs) {
      const file = await readOptionInput(`--lora ${spec.path}`, () => readSafetensors(spec.path));
      try {
        nets.push((await loraNetworkFromFile(model, file, spec.path)).attach(spec.scale));
      } catch (e) {
        if (e instanceof LoraError) throw new CliError(`--lora ${e.message}`, EXIT.usage);
        throw e;
      }
    }
  } catch (e) {
    for (const n of nets) n.detach();
    throw e;
  }
  return nets;
}

/** A one-line description of applied networks: `a.safetensors ×0.8 (16 layers, rank 4)`. */
export function describeLoras(specs: readonly LoraSpec[], nets: readonly LoraNetwork[]): string {
  return nets
    .map((n, i) => {
      const ranks = [...new Set([...n.adapters.values()].map((a) => a.rank))].join('/');
      return `${specs[i]!.path} ×${specs[i]!.scale} (${n.adapters.size} layers, rank ${ranks})`;
    })
    .join(', ');
}

export const loraMergeSpec: CommandSpec = {
  name: 'lora merge',
  summary:
    "Fold LoRA adapters into a model's weights (W += s·(α/r)·B A) and write the model folder.",
  usage: 'sumi lora merge --model <dir> --lora FILE[:S] [--lora FILE[:S] ...] --out <dir>',
  options: [
    {
      name: 'model',
      kind: 'string',
      arg: 'DIR',
      help: "the base: a 'sumi train' output or checkpoint, or a diffusers pipeline folder",
    },
    LORA_OPTION,
    { name: 'out', kind: 'string', arg: 'DIR', help: 'the merged model folder to write' },
    ...modelCopyOptions({
      weights: "the base's weights: auto (EMA when present), ema, or model",
      dtype: 'storage of the merged weights',
    }),
  ],
  notes: [
    'The merged folder samples like the base with the same --lora options, within float rounding;\n' +
      'it is a plain model folder (no adapters), for sumi sample, sumi export or diffusers.',
  ],
};

async function mergeCmd(args: Args): Promise<number> {
  const { dir, out, weights, dtype } = modelCopyArgs(args);
  const specs = loraSpecs(args);
  if (specs.length === 0) throw new UsageError('--lora FILE[:S] is required');
  checkOutFolderEmpty(args, out);
  const p = await loadPipeline(dir, { weights });
  const nets = await applyLoras(p.model, specs);
  for (const n of nets) n.merge().detach();
  await savePipeline(p, out, { dtype });
  console.log(`${out}: ${p.layout.root} with ${describeLoras(specs, nets)} merged`);
  return EXIT.ok;
}

export const loraCommand = commandGroup({
  name: 'lora',
  summary: 'LoRA adapters: merge a LoRA file into a model folder.',
  intro:
    'LoRA adapters (diffusers pytorch_lora_weights.safetensors); train them with sumi train\n' +
    '--lora-rank R --base DIR, apply them with sumi sample --lora FILE[:S].',
  subcommands: { merge: defineCommand(loraMergeSpec, mergeCmd) },
});
