/**
 * What every command shares: the run wrapper (help, error messages without stack traces unless
 * --verbose, exit codes), backend selection, and the repository's own folders.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  type Backend,
  cpuBackend,
  initDefaultBackend,
  setDefaultBackend,
} from '../engine/index.js';
import {
  ModelTaskError,
  NonFiniteError,
  resolveSchedulerName,
  samplersTaking,
  schedulerAliases,
  type WeightsChoice,
  MIN_REPLICA_BATCH,
} from '../diffusion/index.js';
import {
  Args,
  CliError,
  type CommandSpec,
  helpText,
  type OptionSpec,
  parseArgs,
  UsageError,
} from './args.js';
import type { Command } from './main.js';

/** The repository root (presets/ and models/ live there). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The names --sampler takes: the registry's aliases. */
export const SAMPLERS = Object.keys(schedulerAliases);

/** `name` when it is one of SAMPLERS; otherwise a UsageError that lists them. */
export function checkSamplerName(name: string): string {
  try {
    resolveSchedulerName(name);
  } catch {
    throw new UsageError(`unknown sampler '${name}' (choose one of ${SAMPLERS.join(', ')})`);
  }
  return name;
}

/** --sampler S, `fallback` when not given. */
export function samplerOption(fallback: string): OptionSpec {
  return {
    name: 'sampler',
    kind: 'string',
    arg: 'S',
    help: `one of ${SAMPLERS.join(', ')}`,
    default: fallback,
  };
}

/** --karras. */
export const KARRAS_OPTION: OptionSpec = {
  name: 'karras',
  kind: 'flag',
  help: 'Karras sigmas (euler, heun, lms, dpmpp-2m, dpmpp-2m-sde, unipc)',
};

/** --eta η. */
export const ETA_OPTION: OptionSpec = {
  name: 'eta',
  kind: 'number',
  arg: 'η',
  help: `DDIM noise, 0 to 1 (0: deterministic, 1: DDPM-like; samplers: ${samplersTaking('eta').join(', ')})`,
  default: '0',
};

/** --sampler (default `sampler`), --steps as `steps` describes it, --karras and --eta. */
export function samplerOptions(
  sampler: string,
  steps: { help: string; default: string },
): OptionSpec[] {
  return [
    samplerOption(sampler),
    { name: 'steps', kind: 'int', help: steps.help, default: steps.default },
    KARRAS_OPTION,
    ETA_OPTION,
  ];
}

/** --replicas R: threads computing each model call (sampling on the CPU backend). */
export const REPLICAS_OPTION: OptionSpec = {
  name: 'replicas',
  kind: 'int',
  arg: 'R',
  help:
    'threads computing each model call: 2 splits every batch between this thread and a ' +
    'replica of the model in a worker thread (CPU backend; the same images as 1)',
  default: `2 on the CPU for a batch of ${MIN_REPLICA_BATCH}+ images, else 1`,
};

/** --seed S (default 0), described by `help`. */
export function seedOption(help: string): OptionSpec {
  return { name: 'seed', kind: 'int', arg: 'S', help, default: '0' };
}

/** --seed S: the seed of the sampling noise (Philox streams; the same images on every backend). */
export const SEED_OPTION: OptionSpec = seedOption('seed of the noise');

/** --vae DIR: the autoencoder a command reads (`sumi reconstruct`, `sumi eval recon`). */
export const VAE_OPTION: OptionSpec = {
  name: 'vae',
  kind: 'string',
  arg: 'DIR',
  help: 'an AutoencoderKL / VQModel folder, a folder with vae/, or a train-vae --out folder',
};

/**
 * The spec of a command that one --task value of a command selects (withTasks): `--task <task>`,
 * which takes only that value, before the spec's own options.
 */
export function taskCommandSpec(task: string, spec: CommandSpec): CommandSpec {
  const option: OptionSpec = {
    name: 'task',
    kind: 'string',
    arg: 'T',
    help: task,
    choices: [task],
  };
  return { ...spec, options: [option, ...spec.options] };
}

/** --model DIR: the model folder a command reads, described by `help`. */
export function modelOption(help: string): OptionSpec {
  return { name: 'model', kind: 'string', arg: 'DIR', help };
}

/** --weights W: which weights of a model folder to load (auto: the EMA weights when it has them). */
export function weightsOption(
  help = 'auto (EMA when the checkpoint has it), ema, or model',
): OptionSpec {
  return {
    name: 'weights',
    kind: 'string',
    arg: 'W',
    choices: ['auto', 'ema', 'model'],
    help,
    default: 'auto',
  };
}

/** The --weights choice (auto when not given). */
export function weightsChoice(args: Args): WeightsChoice {
  return (args.str('weights') ?? 'auto') as WeightsChoice;
}

/** --dtype T (or another name): how written weights are stored, f32 or f16. */
export function dtypeOption(name: string, help: string): OptionSpec {
  return { name, kind: 'string', arg: 'T', choices: ['f32', 'f16'], help, default: 'f32' };
}

/** The storage a dtypeOption names (F32 when not given). */
export function dtypeChoice(args: Args, name: string): 'F32' | 'F16' {
  return args.str(name) === 'f16' ? 'F16' : 'F32';
}

/**
 * --weights, --dtype and --force of a command that writes a copy of the --model folder into the
 * --out folder (`sumi export`, `sumi lora merge`); read with modelCopyArgs.
 */
export function modelCopyOptions(help: { weights: string; dtype: string }): OptionSpec[] {
  return [
    weightsOption(help.weights),
    dtypeOption('dtype', help.dtype),
    { name: 'force', kind: 'flag', help: 'write into a folder that is not empty' },
  ];
}

/** The options of modelCopyOptions with --model and --out, both required. */
export function modelCopyArgs(args: Args): {
  dir: string;
  out: string;
  weights: WeightsChoice;
  dtype: 'F32' | 'F16';
} {
  const dir = args.str('model');
  const out = args.str('out');
  if (dir === undefined) throw new UsageError('--model <dir> is required');
  if (out === undefined) throw new UsageError('--out <dir> is required');
  return { dir, out, weights: weightsChoice(args), dtype: dtypeChoice(args, 'dtype') };
}

/** Refuses to write into `out` when it is a folder that is not empty, unless --force. */
export function checkOutFolderEmpty(args: Args, out: string): void {
  if (existsSync(out) && readdirSync(out).length > 0 && args.flag('force') !== true) {
    throw new CliError(`${out} is not empty (pass --force to write into it)`);
  }
}

/** Exit codes: 0 ok, 1 error, 2 usage, 3 training diverged (NaN/Inf), 130 interrupted. */
export const EXIT = { ok: 0, error: 1, usage: 2, nonFinite: 3, interrupted: 130 } as const;

/** What an error says (a thrown value that is not an Error, as text). */
export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * `await read()` of what an option names (a file, a folder), any error of it exiting 2 as
 * `<what>: <its message>`.
 */
export async function readOptionInput<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    throw new CliError(`${what}: ${message(e)}`, EXIT.usage);
  }
}

/** The value of `--task` in raw argv (`--task T` or `--task=T`), or undefined. */
function taskIn(argv: readonly string[]): string | undefined {
  const i = argv.indexOf('--task');
  if (i >= 0) return argv[i + 1];
  return argv.find((a) => a.startsWith('--task='))?.slice('--task='.length);
}

/**
 * A command whose `--task` selects another command with its own options (the sequence tasks:
 * `sumi train --task forecast` has options an image run has not); any other task, or none, runs
 * `images`. Each task command accepts `--task` itself.
 */
export function withTasks(images: Command, tasks: Readonly<Record<string, Command>>): Command {
  return {
    name: images.name,
    summary: images.summary,
    run(argv: string[]): Promise<number> {
      const task = taskIn(argv);
      const command = task !== undefined && Object.hasOwn(tasks, task) ? tasks[task]! : images;
      return command.run(argv);
    },
  };
}

/**
 * A Command from a spec and a body: `--help` prints the help, arguments other than options must
 * be the spec's positionals (in args.parsed.positionals), errors print as one line
 * `sumi <name>: <message>` (with the stack under --verbose).
 */
export function defineCommand(spec: CommandSpec, body: (args: Args) => Promise<number>): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    async run(argv: string[]): Promise<number> {
      let verbose = argv.includes('--verbose');
      try {
        const parsed = parseArgs(spec, argv);
        verbose = parsed.verbose;
        if (parsed.help) {
          console.log(helpText(spec));
          return EXIT.ok;
        }
        const names = spec.positionals ?? [];
        if (parsed.positionals.length > names.length) {
          throw new UsageError(`unexpected argument '${parsed.positionals[names.length]}'`);
        }
        if (parsed.positionals.length < names.length) {
          throw new UsageError(`missing ${names[parsed.positionals.length]}`);
        }
        return await body(new Args(parsed));
      } catch (e) {
        if (e instanceof UsageError) {
          console.error(
            `sumi ${spec.name}: ${e.message}\n(sumi ${spec.name} --help lists the options)`,
          );
          return EXIT.usage;
        }
        if (verbose && e instanceof Error && e.stack !== undefined) console.error(e.stack);
        else console.error(`sumi ${spec.name}: ${message(e)}`);
        if (e instanceof NonFiniteError) return EXIT.nonFinite;
        // A model for another task (an upscaler to sample from, an inpainting model without a
        // mask) is bad input.
        if (e instanceof ModelTaskError) return EXIT.usage;
        return e instanceof CliError ? e.exitCode : EXIT.error;
      }
    },
  };
}

export const BACKEND_HELP =
  'cpu, webgpu, or auto (webgpu when an adapter exists, else cpu); also SUMI_BACKEND';

/** --backend B, which selectBackend reads. */
export const BACKEND_OPTION: OptionSpec = {
  name: 'backend',
  kind: 'string',
  arg: 'B',
  help: BACKEND_HELP,
  default: 'cpu',
};

/** How to get a WebGPU adapter on a machine without one (Dawn runs on Vulkan on Linux). */
export const WEBGPU_HINT =
  'install a Vulkan driver: sudo bash ../shared/tools/install-vulkan-cpu.sh (Mesa lavapipe, runs ' +
  "on the CPU), or your distribution's mesa-vulkan-drivers and libvulkan1 packages";

/**
 * Whether the Vulkan loader (libvulkan.so.1) is where the dynamic linker looks: LD_LIBRARY_PATH,
 * the directories of /etc/ld.so.conf.d and the usual library folders. Dawn needs it on Linux;
 * without it Dawn prints a multi-line warning and finds no adapter, so the CLI does not start it.
 */
export function vulkanLoaderFound(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d !== '');
  try {
    for (const f of readdirSync('/etc/ld.so.conf.d')) {
      if (!f.endsWith('.conf')) continue;
      for (const line of readFileSync(join('/etc/ld.so.conf.d', f), 'utf8').split('\n')) {
        const d = line.trim();
        if (d.startsWith('/')) dirs.push(d);
      }
    }
  } catch {
    // no ld.so.conf.d: the default folders below
  }
  const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  dirs.push(
    `/lib/${arch}-linux-gnu`,
    `/usr/lib/${arch}-linux-gnu`,
    '/lib64',
    '/usr/lib64',
    '/lib',
    '/usr/lib',
    '/usr/local/lib',
  );
  return dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
}

/**
 * Makes the backend the default: `--backend`, else SUMI_BACKEND, else cpu. 'auto' lets the
 * engine choose (webgpu when an adapter exists). Without an adapter, 'webgpu' fails with one
 * line saying how to get one.
 */
export async function selectBackend(flag: string | undefined): Promise<Backend> {
  const env = process.env.SUMI_BACKEND;
  const name = flag ?? (env !== undefined && env !== '' ? env : 'cpu');
  if (name === 'cpu') return setDefaultBackend(cpuBackend());
  if (name !== 'webgpu' && name !== 'auto') {
    throw new UsageError(
      `unknown backend '${name}'${flag === undefined ? ' (from SUMI_BACKEND)' : ''}: cpu, webgpu or auto`,
    );
  }
  if (!vulkanLoaderFound()) {
    if (name === 'webgpu') {
      throw new CliError(`backend webgpu: no WebGPU adapter (no Vulkan loader); ${WEBGPU_HINT}`);
    }
    console.error('sumi: no WebGPU adapter (no Vulkan loader); using the cpu backend');
    return setDefaultBackend(cpuBackend());
  }
  const saved = process.env.SUMI_BACKEND;
  try {
    // The engine reads SUMI_BACKEND itself when given no name; 'auto' must not be passed on.
    if (name === 'auto') delete process.env.SUMI_BACKEND;
    return await initDefaultBackend(name === 'auto' ? undefined : 'webgpu');
  } catch (e) {
    const m = message(e);
    throw new CliError(`backend ${name}: ${m}${/adapter/i.test(m) ? `; ${WEBGPU_HINT}` : ''}`);
  } finally {
    if (saved !== undefined) process.env.SUMI_BACKEND = saved;
  }
}

/** 1h02m03s, 4m05s, 6.1s */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m${sec}s` : `${m}m${sec}s`;
}

/**
 * A command with subcommands (`sumi edit img2img …`): `--help` lists them with their summaries;
 * a missing or unknown one is a usage error (exit 2) followed by that list.
 */
export function commandGroup(o: {
  name: string;
  summary: string;
  /** The paragraph above the list of subcommands. */
  intro: string;
  subcommands: Readonly<Record<string, Command>>;
}): Command {
  const names = Object.keys(o.subcommands);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const usage = [
    `usage: sumi ${o.name} <${names.join('|')}> [options]`,
    '',
    o.intro,
    ...Object.entries(o.subcommands).map(([n, c]) => `  ${n.padEnd(width)} ${c.summary}`),
    '',
    `  sumi ${o.name} <subcommand> --help   options of a subcommand`,
  ].join('\n');
  return {
    name: o.name,
    summary: o.summary,
    async run(argv: string[]): Promise<number> {
      const [sub, ...rest] = argv;
      if (sub === '--help' || sub === '-h' || sub === 'help') {
        console.log(usage);
        return EXIT.ok;
      }
      const cmd =
        sub !== undefined && Object.hasOwn(o.subcommands, sub) ? o.subcommands[sub] : undefined;
      if (cmd === undefined) {
        const what = sub === undefined ? 'give a subcommand' : `unknown subcommand '${sub}'`;
        console.error(`sumi ${o.name}: ${what}\n\n${usage}`);
        return EXIT.usage;
      }
      return cmd.run(rest);
    },
  };
}
