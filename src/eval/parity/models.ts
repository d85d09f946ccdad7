/**
 * The model fixture kind: a folder with `fixture.json` naming a `model_class` (UNet2DModel,
 * UNet2DConditionModel, AutoencoderKL) beside `fixture.safetensors`, the model's `config.json` and
 * `diffusion_pytorch_model.safetensors`. Builds the model from the config, loads the weights and
 * checks, against the float64 references (`*_f64`):
 * - U-Nets: the forward output for `inputs`, and the gradients of sum(output · grad_weight) with
 *   respect to the inputs in `grad_inputs` and the parameters in `grad_params`; when the fixture
 *   has `ddim_sampling`, the whole sampling run (per-step model outputs and samples, final sample);
 * - AutoencoderKL: encode(image) mean and logvar, decode(latent) and its gradient in the latent.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { keep, mul, noGrad, sum, type Tensor, tidy } from '../../engine/index.js';
import { createScheduler, sample } from '../../diffusion/index.js';
import { AutoencoderKL } from '../../nn/models/autoencoder-kl.js';
import { createModel, WEIGHTS_NAME, CONFIG_NAME } from '../../nn/models/create.js';
import { UNet2DConditionModel } from '../../nn/models/unet-2d-condition.js';
import { UNet2DModel } from '../../nn/models/unet-2d.js';
import { loadModule } from '../../nn/state-io.js';
import { maxRel, maxRelL2PerStep, record, relL2 } from './compare.js';
import { FixtureTensors, joinAll, read } from './fixture-tensors.js';
import type { FixtureCandidate, FixtureKind, RecordResult, RunContext } from './kinds.js';

/** README: float32 against the float64 reference, relative L2 < 1e-4. */
export const MODEL_F32_TOLERANCE = 1e-4;
/**
 * Float64 against float64: the reference's timestep embedding is float32 (diffusers computes it
 * with `.float()`), which leaves ~1e-7 of float32 rounding in it; 1e-6 keeps headroom for that.
 */
export const MODEL_F64_TOLERANCE = 1e-6;

const MODEL_CLASSES = ['UNet2DModel', 'UNet2DConditionModel', 'AutoencoderKL'];

interface ModelFixture {
  model_class: string;
  config_file?: string;
  weights_file?: string;
  inputs?: Record<string, string | number | number[]>;
  grad_inputs?: string[];
  grad_params?: string[];
  ddim_sampling?: {
    scheduler_config: Record<string, unknown>;
    num_inference_steps: number;
    eta?: number;
  };
}

/** The fixture's model: config + weights, moved to the run's dtype and backend, in eval mode. */
export async function loadFixtureModel(
  c: FixtureCandidate,
  ctx: RunContext,
): Promise<UNet2DModel | UNet2DConditionModel | AutoencoderKL> {
  const fx = c.json as unknown as ModelFixture;
  const dir = dirname(c.jsonPath);
  const config: unknown = JSON.parse(
    await readFile(join(dir, fx.config_file ?? CONFIG_NAME), 'utf8'),
  );
  const model = createModel(config as Record<string, unknown>, { className: fx.model_class });
  if (model.className !== fx.model_class) {
    throw new Error(`config is a ${model.className}, fixture.json says ${fx.model_class}`);
  }
  if (!(
    model instanceof UNet2DModel ||
    model instanceof UNet2DConditionModel ||
    model instanceof AutoencoderKL
  )) {
    throw new Error(`model class ${model.className} has no fixture checks`);
  }
  await loadModule(model, join(dir, fx.weights_file ?? WEIGHTS_NAME));
  await model.to({ dtype: ctx.dtype, backend: ctx.backend });
  model.eval();
  return model;
}

type UNet = UNet2DModel | UNet2DConditionModel;

interface UNetInputs {
  sample: Tensor;
  timesteps: number | number[];
  classLabels: number[] | null;
  context: Tensor | null;
  /** The tensor inputs by fixture name. */
  tensors: Map<string, Tensor>;
}

function unetInputs(fx: ModelFixture, T: FixtureTensors, grads: ReadonlySet<string>): UNetInputs {
  const tensors = new Map<string, Tensor>();
  const numbers = new Map<string, number | number[]>();
  for (const [key, v] of Object.entries(fx.inputs ?? {})) {
    if (typeof v === 'string') {
      const t = T.tensor(v);
      if (grads.has(key)) t.requireGrad();
      tensors.set(key, t);
    } else {
      numbers.set(key, v);
    }
  }
  const known = ['sample', 'timesteps', 'class_labels', 'encoder_hidden_states'];
  const unknown = [...tensors.keys(), ...numbers.keys()].filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new Error(`unsupported model inputs: ${unknown.join(', ')}`);
  const s = tensors.get('sample');
  const ts = numbers.get('timesteps');
  if (!s || ts === undefined) throw new Error('fixture inputs need a sample tensor and timesteps');
  const labels = numbers.get('class_labels');
  return {
    sample: s,
    timesteps: ts,
    classLabels: labels === undefined ? null : typeof labels === 'number' ? [labels] : labels,
    context: tensors.get('encoder_hidden_states') ?? null,
    tensors,
  };
}

function runUNet(model: UNet, x: Tensor, t: number | number[], inp: UNetInputs): Tensor {
  const opts = { classLabels: inp.classLabels };
  return model instanceof UNet2DConditionModel
    ? model.forward(x, t, inp.context, opts)
    : model.forward(x, t, opts);
}

async function checkUNet(
  model: UNet,
  fx: ModelFixture,
  T: FixtureTensors,
  tol: number,
): Promise<RecordResult[]> {
  const out: RecordResult[] = [];
  const gradInputs = new Set(fx.grad_inputs ?? []);
  const inp = unetInputs(fx, T, gradInputs);
  const params = new Map(model.namedParameters());
  const y = tidy(() => {
    const o = runUNet(model, inp.sample, inp.timesteps, inp);
    if (T.has('grad_weight')) sum(mul(o, T.tensor('grad_weight'))).backward();
    return o;
  });
  out.push(record('output', 'rel-l2', relL2(await read(y), T.values('output_f64')), tol));
  y.dispose();
  for (const name of gradInputs) {
    const g = inp.tensors.get(name)?.grad;
    const e = g ? relL2(await read(g), T.values(`grad_f64/input/${name}`)) : Infinity;
    out.push(record(`grad/input/${name}`, 'rel-l2', e, tol));
  }
  for (const name of fx.grad_params ?? []) {
    const g = params.get(name)?.grad;
    const e = g ? relL2(await read(g), T.values(`grad_f64/param/${name}`)) : Infinity;
    out.push(record(`grad/param/${name}`, 'rel-l2', e, tol));
  }
  model.zeroGrad();
  for (const t of inp.tensors.values()) t.dispose();
  if (fx.ddim_sampling && T.has('ddim/x_T')) out.push(...(await checkDdim(model, fx, T, inp, tol)));
  return out;
}

/** The fixture's sampling run with the U-Net in place of the fake model. */
async function checkDdim(
  model: UNet,
  fx: ModelFixture,
  T: FixtureTensors,
  inp: UNetInputs,
  tol: number,
): Promise<RecordResult[]> {
  const d = fx.ddim_sampling!;
  const cfg = d.scheduler_config;
  const className = typeof cfg._class_name === 'string' ? cfg._class_name : 'DDIMScheduler';
  const scheduler = createScheduler(className, cfg);
  const outputs: Float64Array[] = [];
  const samples: Float64Array[] = [];
  const pending: [Tensor, Tensor][] = [];
  const xT = T.tensor('ddim/x_T');
  const final = noGrad(() =>
    sample(scheduler, (x, t) => runUNet(model, x, t, inp), xT, {
      numInferenceSteps: d.num_inference_steps,
      stepOptions: { eta: d.eta ?? 0 },
      onStep: (info) => {
        pending.push([keep(info.modelOutput.alias()), keep(info.sample.alias())]);
      },
    }),
  );
  xT.dispose();
  for (const [o, s] of pending) {
    outputs.push(await read(o));
    samples.push(await read(s));
    o.dispose();
    s.dispose();
  }
  const out: RecordResult[] = [];
  out.push(
    record('ddim/timesteps', 'max-rel', maxRel(scheduler.timesteps, T.values('ddim/timesteps')), 0),
  );
  const steps = T.entry('ddim/prev_sample_f64').shape[0]!;
  const perStep = (ours: Float64Array[], name: string): number =>
    ours.length === steps ? maxRelL2PerStep(joinAll(ours), T.values(name), steps) : Infinity;
  if (T.has('ddim/model_output_f64')) {
    out.push(record('ddim/model_output', 'rel-l2', perStep(outputs, 'ddim/model_output_f64'), tol));
  }
  out.push(record('ddim/prev_sample', 'rel-l2', perStep(samples, 'ddim/prev_sample_f64'), tol));
  out.push(
    record(
      'ddim/final_sample',
      'rel-l2',
      relL2(await read(final), T.values('ddim/final_sample_f64')),
      tol,
    ),
  );
  final.dispose();
  return out;
}

async function checkAutoencoderKL(
  model: AutoencoderKL,
  T: FixtureTensors,
  tol: number,
): Promise<RecordResult[]> {
  const out: RecordResult[] = [];
  if (T.has('image')) {
    const image = T.tensor('image');
    const [mean, logvar] = noGrad(() => {
      const p = model.encode(image);
      return [p.mean, p.logvar];
    });
    out.push(
      record('encode/mean', 'rel-l2', relL2(await read(mean), T.values('encode/mean_f64')), tol),
    );
    out.push(
      record(
        'encode/logvar',
        'rel-l2',
        relL2(await read(logvar), T.values('encode/logvar_f64')),
        tol,
      ),
    );
    for (const t of [image, mean, logvar]) t.dispose();
  }
  if (T.has('latent')) {
    const z = T.tensor('latent').requireGrad();
    const y = tidy(() => {
      const o = model.decode(z);
      if (T.has('grad_weight')) sum(mul(o, T.tensor('grad_weight'))).backward();
      return o;
    });
    out.push(
      record('decode/output', 'rel-l2', relL2(await read(y), T.values('decode/output_f64')), tol),
    );
    if (T.has('grad_f64/latent')) {
      const e = z.grad ? relL2(await read(z.grad), T.values('grad_f64/latent')) : Infinity;
      out.push(record('grad/latent', 'rel-l2', e, tol));
    }
    model.zeroGrad();
    y.dispose();
    z.dispose();
  }
  return out;
}

export const modelFixtureKind: FixtureKind = {
  name: 'model',
  detect: (c: FixtureCandidate) =>
    typeof c.json['model_class'] === 'string' && MODEL_CLASSES.includes(c.json['model_class']),

  async run(c: FixtureCandidate, ctx: RunContext): Promise<RecordResult[]> {
    const fx = c.json as unknown as ModelFixture;
    const T = await FixtureTensors.open(c, ctx);
    const tol = ctx.dtype === 'float64' ? MODEL_F64_TOLERANCE : MODEL_F32_TOLERANCE;
    const model = await loadFixtureModel(c, ctx);
    const records: RecordResult[] = [];
    const n = (c.json['num_parameters'] as number | undefined) ?? null;
    if (n !== null)
      records.push(record('num_parameters', 'count', Math.abs(model.numParameters() - n), 0));
    if (model instanceof AutoencoderKL) records.push(...(await checkAutoencoderKL(model, T, tol)));
    else records.push(...(await checkUNet(model, fx, T, tol)));
    for (const p of model.parameters()) p.dispose();
    return records;
  },
};
