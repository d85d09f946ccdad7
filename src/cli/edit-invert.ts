/**
 * `sumi edit invert` and `sumi edit reconstruct`: DDIM inversion of an image to the noise x_T that
 * DDIM sampling (η = 0) turns back into it, written as safetensors with what reconstructing needs
 * in its metadata (steps, condition, guidance); and DDIM sampling from such a file, under its own
 * condition or another one (an edit). On a latent model the image's latents (its vae's posterior
 * mean) are inverted, x_T is a latent, and the reconstruction is decoded: its error is the
 * autoencoder's and the inversion's together, so the autoencoder's alone is printed beside it.
 */
import {
  type ConditionValue,
  createSampler,
  ddimInvert,
  EditInputError,
  inversionSchedulerConfig,
  invertibleScheduler,
  type LoadedPipeline,
  reconstruct,
  resolveSchedulerName,
  sample,
} from '../diffusion/index.js';
import { noGrad, type Tensor, tensor } from '../engine/index.js';
import { readSafetensors, writeSafetensors } from '../nn/index.js';
import { type Args, type CommandSpec, UsageError } from './args.js';
import { defineCommand, EXIT, selectBackend } from './common.js';
import {
  asEditInputErrors,
  CONDITION_OPTIONS,
  editCondition,
  editDenoiser,
  guidanceOf,
  IMAGE_OPTION,
  inputError,
  latentNote,
  loadEditModel,
  MODEL_OPTION,
  outputPath,
  requiredFile,
  readEditImage,
  saveEditResult,
  stepsOf,
  TAIL_OPTIONS,
  weightsAndTime,
  writeEditPng,
} from './edit-common.js';
import { Progress } from './progress.js';

/** `format` in the metadata of an inversion file. */
export const INVERSION_FORMAT = 'sumi-ddim-inversion';
/** The tensor holding x_T. */
const NOISE_TENSOR = 'noise';

const invertSpec: CommandSpec = {
  name: 'edit invert',
  summary: 'DDIM inversion: the noise x_T that DDIM sampling turns back into the image.',
  usage:
    'sumi edit invert --model <dir> --image in.png [--steps 50] [--class K | --prompt TEXT] ' +
    '--out noise.safetensors [--reconstruct out.png]',
  notes: [
    'Only DDIM with η = 0 is invertible (a deterministic step, run backwards). Each step is ' +
      'refined by --fixed-point iterations (one model call each): 0 is the plain inversion ' +
      'of diffusers, whose reconstruction error is larger (docs/editing.md). x̂0 is not clipped, ' +
      'in the inversion or the reconstruction.',
    "A latent model inverts the image's latents (an AutoencoderKL's posterior mean) and writes " +
      'x_T of the latent shape; --reconstruct decodes, and prints the error of the vae alone too.',
  ],
  options: [
    MODEL_OPTION,
    IMAGE_OPTION,
    { name: 'steps', kind: 'int', help: 'DDIM steps', default: '50' },
    {
      name: 'fixed-point',
      kind: 'int',
      arg: 'K',
      help: 'fixed-point refinements per step (0: plain inversion)',
      default: '1',
    },
    {
      name: 'sampler',
      kind: 'string',
      arg: 'S',
      help: 'ddim, the only invertible sampler',
      default: 'ddim',
    },
    ...CONDITION_OPTIONS,
    {
      name: 'out',
      kind: 'string',
      arg: 'FILE',
      help: 'x_T as safetensors (tensor "noise" [1, C, H, W], settings in the metadata)',
    },
    {
      name: 'reconstruct',
      kind: 'string',
      arg: 'FILE',
      help: 'also sample back from x_T with DDIM (η = 0) and write the PNG; prints the error',
    },
    ...TAIL_OPTIONS,
  ],
};

const reconstructSpec: CommandSpec = {
  name: 'edit reconstruct',
  summary: "DDIM sampling (η = 0) from a 'sumi edit invert' noise file, under any condition.",
  usage:
    'sumi edit reconstruct --model <dir> --noise noise.safetensors [--class K | --prompt TEXT] ' +
    '[--guidance W] --out out.png',
  notes: [
    'The steps, and by default the condition and guidance, are those of the inversion; another ' +
      '--class or --prompt edits the image while keeping what the noise encodes.',
  ],
  options: [
    MODEL_OPTION,
    {
      name: 'noise',
      kind: 'string',
      arg: 'FILE',
      help: "x_T written by 'sumi edit invert'",
    },
    ...CONDITION_OPTIONS.map((o) =>
      o.name === 'guidance' ? { ...o, default: 'that of the inversion' } : o,
    ),
    { name: 'out', kind: 'string', arg: 'FILE', help: 'the image (PNG)' },
    ...TAIL_OPTIONS,
  ],
};

/** RMSE and PSNR (peak-to-peak 2) of a against b, both [−1, 1]. */
function reconstructionError(a: ArrayLike<number>, b: ArrayLike<number>): string {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  const rmse = Math.sqrt(se / a.length);
  return `RMSE ${rmse.toFixed(4)}, PSNR ${(20 * Math.log10(2 / rmse)).toFixed(1)} dB`;
}

/** RMSE and PSNR of the vae's round trip D(E(x)) of `image` (the posterior mean). */
async function vaeError(p: LoadedPipeline, image: Tensor): Promise<string> {
  const r = reconstruct(p.vae!.vae, image);
  try {
    return reconstructionError(await r.images.data(), await image.data());
  } finally {
    r.images.dispose();
    r.indices?.dispose();
  }
}

/** DDIM sampling (η = 0, unclipped) from x_T under one condition, decoded on a latent model. */
function sampleBack(
  p: LoadedPipeline,
  xT: Tensor,
  value: ConditionValue,
  guidance: number,
  steps: number,
  onStep: () => void,
): Tensor {
  const scheduler = createSampler('ddim', inversionSchedulerConfig(p.schedulerConfig));
  const { model, dispose } = editDenoiser(p, value, guidance);
  let x: Tensor;
  try {
    x = noGrad(() =>
      sample(scheduler, model, xT, { numInferenceSteps: steps, stepOptions: { eta: 0 }, onStep }),
    );
  } finally {
    dispose();
  }
  if (p.vae === null) return x;
  try {
    return p.vae.decode(x);
  } finally {
    x.dispose();
  }
}

async function invertCmd(args: Args): Promise<number> {
  const out = outputPath(args, 'out', ['.safetensors']);
  const recon = args.has('reconstruct') ? outputPath(args, 'reconstruct', ['.png']) : null;
  const imagePath = requiredFile(args, 'image');
  const steps = stepsOf(args, 50);
  const iterations = args.num('fixed-point') ?? 1;
  if (iterations < 0) throw new UsageError(`--fixed-point must be 0 or more, got ${iterations}`);
  const samplerName = args.str('sampler') ?? 'ddim';
  let className: string;
  try {
    className = resolveSchedulerName(samplerName).className;
  } catch {
    className = samplerName;
  }
  if (className !== 'DDIMScheduler') {
    throw new EditInputError(
      `--sampler ${samplerName}: only ddim is invertible (DDIM with η = 0 is a deterministic ` +
        'step that can be run backwards; the other samplers are stochastic, multistep or in σ)',
    );
  }
  const guidance = guidanceOf(args);
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const p = await loadEditModel(args, ['generate'], { latent: true });
  const image = await readEditImage(p, imagePath);
  const value = editCondition(p, { cls: args.str('class'), prompt: args.str('prompt') });
  const scheduler = invertibleScheduler(
    createSampler('ddim', inversionSchedulerConfig(p.schedulerConfig)),
  );
  const t0 = performance.now();
  const total = steps * (iterations + 1) + (recon !== null ? steps : 0);
  const progress = new Progress(quiet);
  let done = 0;
  const { model, dispose } = editDenoiser(p, value, guidance);
  let xT: Tensor;
  try {
    xT = ddimInvert(model, scheduler, image, {
      numInferenceSteps: steps,
      fixedPointIterations: iterations,
      onStep: () => progress.update('invert', (done += iterations + 1), total),
      vae: p.vae,
    });
  } finally {
    dispose();
  }
  const timestep = scheduler.timesteps[0]!;
  let rebuilt: Tensor | null = null;
  let error = '';
  try {
    if (recon !== null) {
      rebuilt = sampleBack(p, xT, value, guidance, steps, () =>
        progress.update('invert', ++done, total),
      );
      error = reconstructionError(await rebuilt.data(), await image.data());
      if (p.vae !== null) error += ` (the vae alone: ${await vaeError(p, image)})`;
    }
    progress.clear();
    const data = Float32Array.from(await xT.data());
    await writeSafetensors(out, [{ name: NOISE_TENSOR, shape: xT.shape, data, dtype: 'F32' }], {
      format: INVERSION_FORMAT,
      version: '1',
      model: p.layout.root,
      weights: p.weights,
      image: imagePath,
      steps: String(steps),
      timestep: String(timestep),
      fixed_point_iterations: String(iterations),
      condition: JSON.stringify(value),
      guidance: String(guidance),
      ...(p.vae !== null ? { latent: p.vae.spec.vaeClass } : {}),
    });
    if (rebuilt !== null && recon !== null) await writeEditPng(recon, rebuilt);
  } finally {
    image.dispose();
    xT.dispose();
    rebuilt?.dispose();
  }
  if (!quiet) {
    console.log(
      `${out}: x_T at t = ${timestep} of ${steps} DDIM steps (${iterations} fixed-point ` +
        `iteration${iterations === 1 ? '' : 's'} per step) from ${imagePath}` +
        (recon !== null ? `; reconstructed in ${recon}: ${error}` : '') +
        `${latentNote(p, undefined)}; ${weightsAndTime(p, backend, t0)}`,
    );
  }
  return EXIT.ok;
}

/** x_T [1, C, H, W] and the settings of an inversion file, checked against the model. */
async function readInversion(
  path: string,
  p: LoadedPipeline,
): Promise<{ xT: Tensor; steps: number; value: ConditionValue; guidance: number }> {
  let file;
  try {
    file = await readSafetensors(path);
  } catch (e) {
    return inputError(e);
  }
  const meta = file.metadata;
  if (meta.format !== INVERSION_FORMAT) {
    return inputError(
      `${path}: not a 'sumi edit invert' noise file (metadata format ${JSON.stringify(meta.format ?? null)}, expected "${INVERSION_FORMAT}")`,
    );
  }
  const entry = file.tensors.get(NOISE_TENSOR);
  const want = [1, ...p.model.sampleShape];
  if (entry === undefined) return inputError(`${path}: no tensor "${NOISE_TENSOR}"`);
  if (entry.shape.length !== 4 || entry.shape.some((d, i) => d !== want[i])) {
    return inputError(
      `${path}: noise of shape [${entry.shape.join(', ')}]; the model takes [${want.join(', ')}]`,
    );
  }
  const steps = Number(meta.steps);
  const guidance = Number(meta.guidance ?? '1');
  let value: unknown;
  try {
    value = JSON.parse(meta.condition ?? 'null');
  } catch {
    value = undefined;
  }
  if (!Number.isInteger(steps) || steps < 1 || !Number.isFinite(guidance)) {
    return inputError(
      `${path}: metadata steps ${meta.steps} / guidance ${meta.guidance}: not valid`,
    );
  }
  if (value !== null && typeof value !== 'number' && typeof value !== 'string') {
    return inputError(`${path}: metadata condition ${meta.condition}: not a class, prompt or null`);
  }
  const w = p.model.parameters()[0]!;
  const xT = tensor(Float32Array.from(entry.data), want, { dtype: w.dtype, backend: w.backend });
  return { xT, steps, value, guidance };
}

async function reconstructCmd(args: Args): Promise<number> {
  const out = outputPath(args, 'out', ['.png']);
  const noisePath = requiredFile(args, 'noise');
  const guidanceArg = args.has('guidance') ? guidanceOf(args) : null;
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const p = await loadEditModel(args, ['generate'], { latent: true });
  const inv = await readInversion(noisePath, p);
  const given = args.has('class') || args.has('prompt');
  const value = given
    ? editCondition(p, { cls: args.str('class'), prompt: args.str('prompt') })
    : inv.value;
  const guidance = guidanceArg ?? inv.guidance;
  const t0 = performance.now();
  const progress = new Progress(quiet);
  let done = 0;
  let x: Tensor;
  try {
    x = sampleBack(p, inv.xT, value, guidance, inv.steps, () =>
      progress.update('reconstruct', ++done, inv.steps),
    );
  } finally {
    inv.xT.dispose();
  }
  await saveEditResult(out, x, progress);
  if (!quiet) {
    console.log(
      `${out}: ${inv.steps} DDIM steps from ${noisePath} under ${JSON.stringify(value)}` +
        (guidance !== 1 ? ` (guidance ${guidance})` : '') +
        (p.vae !== null ? `, decoded by its ${p.vae.spec.vaeClass}` : '') +
        `, ${weightsAndTime(p, backend, t0)}`,
    );
  }
  return EXIT.ok;
}

export const invertCommand = defineCommand(invertSpec, (a) =>
  asEditInputErrors(() => invertCmd(a)),
);
export const reconstructCommand = defineCommand(reconstructSpec, (a) =>
  asEditInputErrors(() => reconstructCmd(a)),
);
