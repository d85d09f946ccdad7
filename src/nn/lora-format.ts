/**
 * LoRA files as diffusers reads and writes them: `pytorch_lora_weights.safetensors`.
 *
 * Written: the peft layout that diffusers' `load_lora_weights` takes as is (and that its
 * `save_lora_weights` writes for a peft state dict), one pair per adapted layer,
 *
 *   unet.<module path>.lora_A.weight    A, [r, in] (a conv: [r, in, k, k])
 *   unet.<module path>.lora_B.weight    B, [out, r] (a conv: [out, r, 1, 1])
 *
 * with α in the header metadata: `__metadata__.lora_adapter_metadata` is a JSON object of peft
 * LoraConfig fields prefixed by the component (`"unet.r"`, `"unet.lora_alpha"`,
 * `"unet.target_modules"`, `"unet.rank_pattern"`, `"unet.alpha_pattern"`, ...), which diffusers
 * turns into the LoraConfig of the adapter. A file without that metadata gets α = r (scale 1)
 * in diffusers, so the metadata is what carries α ≠ r across.
 *
 * Read: that layout, with or without the `unet.` prefix; diffusers' own `lora.down/lora.up`
 * layout (`<path>.lora.down.weight` = A, `<path>.lora.up.weight` = B) and the older attention
 * processor keys (`<attention>.processor.to_q_lora.down.weight`, `to_out_lora` for to_out.0);
 * α from the metadata, else from `<path>.alpha` scalars (kohya's network alphas), else α = r.
 */
import type { Tensor } from '../engine/index.js';
import { tensor } from '../engine/index.js';
import {
  createLoraNetwork,
  type LoraAdapterSpec,
  LoraError,
  loraShapes,
  type LoraNetwork,
  type LoraTargetLayer,
  matchesLoraTarget,
} from './lora.js';
import { Conv2d, Linear } from './layers.js';
import type { Module } from './module.js';
import type { SafetensorsEntry, SafetensorsFile, TensorToWrite } from './safetensors.js';
import { serializeSafetensors } from './safetensors.js';

export const LORA_WEIGHTS_NAME = 'pytorch_lora_weights.safetensors';
/** The safetensors metadata key diffusers keeps the peft LoraConfig under. */
export const LORA_METADATA_KEY = 'lora_adapter_metadata';
/** The component prefix of a denoiser's keys. */
export const UNET_PREFIX = 'unet';

const COMPONENTS = ['unet', 'text_encoder', 'text_encoder_2', 'transformer', 'controlnet'];

const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** At most `n` items, then how many more. */
function listSome(items: readonly string[], n = 4): string {
  const shown = items.slice(0, n).join(', ');
  return items.length > n ? `${shown} and ${items.length - n} more` : shown;
}

export interface LoraWriteOptions {
  /** How A and B are stored (default F32). */
  dtype?: 'F32' | 'F16';
  /** Component prefix of the keys (default 'unet'). */
  prefix?: string;
}

/** The tensors and header metadata of a LoRA file for `net` (see the module comment). */
export async function loraFileContents(
  net: LoraNetwork,
  opts: LoraWriteOptions = {},
): Promise<{ tensors: TensorToWrite[]; metadata: Record<string, string> }> {
  const prefix = opts.prefix ?? UNET_PREFIX;
  const config = net.peftConfig();
  const tensors: TensorToWrite[] = [];
  for (const [name, t] of net.namedParameters()) {
    const data = await t.data();
    if (!(data instanceof Float32Array || data instanceof Float64Array)) {
      throw new LoraError(`LoRA tensor ${name} is not floating-point`);
    }
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
    tensors.push({
      name: `${prefix}.${name}`,
      shape: t.shape,
      data: f32,
      dtype: opts.dtype ?? 'F32',
    });
  }
  const packed = Object.fromEntries(
    Object.keys(config)
      .sort()
      .map((k) => [`${prefix}.${k}`, config[k]]),
  );
  return {
    tensors,
    metadata: { format: 'pt', [LORA_METADATA_KEY]: JSON.stringify(packed, null, 2) },
  };
}

/** The bytes of a `pytorch_lora_weights.safetensors` for `net`. */
export async function serializeLora(
  net: LoraNetwork,
  opts: LoraWriteOptions = {},
): Promise<Uint8Array> {
  const { tensors, metadata } = await loraFileContents(net, opts);
  return serializeSafetensors(tensors, metadata);
}

/** One adapter as a file gives it, by module path. */
export interface LoraFileAdapter {
  path: string;
  a: SafetensorsEntry;
  b: SafetensorsEntry;
  rank: number;
  alpha: number;
}

export interface ParsedLoraFile {
  /** The component prefix of the keys ('unet'), or null for bare module paths. */
  prefix: string | null;
  /** Which key layout the file uses. */
  layout: 'peft' | 'diffusers' | 'diffusers-attn-processor';
  adapters: LoraFileAdapter[];
  /** Where α came from. */
  alphaFrom: 'metadata' | 'alpha-keys' | 'rank';
}

/** (module path, role) of a key without its component prefix; null for an unknown key. */
function keyRole(
  key: string,
): { path: string; role: 'A' | 'B' | 'alpha'; layout: ParsedLoraFile['layout'] } | null {
  let m = /^(.+)\.lora_([AB])\.weight$/.exec(key);
  if (m) return { path: m[1]!, role: m[2] as 'A' | 'B', layout: 'peft' };
  m = /^(.+)\.(?:lora|lora_linear_layer)\.(down|up)\.weight$/.exec(key);
  if (m) return { path: m[1]!, role: m[2] === 'down' ? 'A' : 'B', layout: 'diffusers' };
  m = /^(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/.exec(key);
  if (m) {
    const layer = m[2] === 'to_out' ? 'to_out.0' : m[2]!;
    return {
      path: `${m[1]!}.${layer}`,
      role: m[3] === 'down' ? 'A' : 'B',
      layout: 'diffusers-attn-processor',
    };
  }
  m = /^(.+)\.alpha$/.exec(key);
  if (m) return { path: m[1]!, role: 'alpha', layout: 'peft' };
  return null;
}

/** A peft pattern key ('^path' for exact, else a path suffix) matching `path`. */
function patternValue(pattern: unknown, path: string): number | undefined {
  if (pattern === null || typeof pattern !== 'object') return undefined;
  for (const [k, v] of Object.entries(pattern as Record<string, unknown>)) {
    if (typeof v !== 'number') continue;
    const exact = k.startsWith('^');
    const key = exact ? k.slice(1) : k;
    if (exact ? key === path : matchesLoraTarget(path, key)) return v;
  }
  return undefined;
}

/** The component's LoraConfig fields from the header metadata (null when absent). */
function metadataConfig(
  file: SafetensorsFile,
  prefix: string | null,
  source: string,
): Record<string, unknown> | null {
  const raw = file.metadata[LORA_METADATA_KEY];
  if (raw === undefined) return null;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new LoraError(
      `${source}: metadata ${LORA_METADATA_KEY} is not JSON (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new LoraError(`${source}: metadata ${LORA_METADATA_KEY} is not a JSON object`);
  }
  const obj = json as Record<string, unknown>;
  if (prefix === null) return obj;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k.startsWith(`${prefix}.`)) out[k.slice(prefix.length + 1)] = v;
  }
  return Object.keys(out).length > 0 ? out : null;
}

/**
 * The adapters of a LoRA file for a denoiser: keys sorted into (A, B) pairs per module path,
 * ranks from the shapes (checked against each other and the metadata), α as the module comment
 * says. Throws a LoraError naming the keys for keys of another component, unknown keys,
 * unpaired keys and rank mismatches.
 */
export function parseLoraFile(file: SafetensorsFile, source: string): ParsedLoraFile {
  const keys = [...file.tensors.keys()];
  if (keys.length === 0) throw new LoraError(`${source}: the file holds no tensors`);
  const first = (k: string): string => k.split('.')[0]!;
  const prefixed = keys.filter((k) => COMPONENTS.includes(first(k)));
  let prefix: string | null = null;
  if (prefixed.length > 0) {
    const others = keys.filter((k) => first(k) !== UNET_PREFIX);
    if (others.length > 0) {
      throw new LoraError(
        `${source}: ${others.length} keys adapt another component than the denoiser (unet), ` +
          `which is not supported: ${listSome(others)}`,
      );
    }
    prefix = UNET_PREFIX;
  }
  const bare = (k: string): string => (prefix === null ? k : k.slice(prefix.length + 1));
  const unknown: string[] = [];
  const pairs = new Map<string, { a?: SafetensorsEntry; b?: SafetensorsEntry; alpha?: number }>();
  const layouts = new Set<ParsedLoraFile['layout']>();
  for (const key of keys) {
    const role = keyRole(bare(key));
    if (role === null) {
      unknown.push(key);
      continue;
    }
    const entry = file.tensors.get(key)!;
    const p = pairs.get(role.path) ?? {};
    pairs.set(role.path, p);
    if (role.role === 'alpha') {
      if (entry.data.length !== 1) {
        throw new LoraError(
          `${source}: ${key} holds ${fmt(entry.shape)} values; an alpha is one number`,
        );
      }
      p.alpha = entry.data[0]!;
      continue;
    }
    layouts.add(role.layout);
    if (role.role === 'A') p.a = entry;
    else p.b = entry;
  }
  if (unknown.length > 0) {
    throw new LoraError(
      `${source}: ${unknown.length} keys are not LoRA weights (lora_A/lora_B, lora.down/lora.up): ${listSome(unknown)}`,
    );
  }
  const unpaired = [...pairs]
    .filter(([, p]) => p.a === undefined || p.b === undefined)
    .map(([path, p]) =>
      p.a === undefined && p.b === undefined
        ? `${path} (an alpha without weights)`
        : `${path} (no ${p.a === undefined ? 'A / down' : 'B / up'} weight)`,
    );
  if (unpaired.length > 0) {
    throw new LoraError(`${source}: unpaired LoRA weights: ${listSome(unpaired)}`);
  }
  const meta = metadataConfig(file, prefix, source);
  const metaRank = typeof meta?.r === 'number' ? meta.r : undefined;
  const metaAlpha = typeof meta?.lora_alpha === 'number' ? meta.lora_alpha : undefined;
  const anyAlphaKey = [...pairs.values()].some((p) => p.alpha !== undefined);
  const adapters: LoraFileAdapter[] = [];
  const mismatches: string[] = [];
  for (const [path, p] of pairs) {
    const a = p.a!;
    const b = p.b!;
    const rank = a.shape[0] ?? 0;
    if (a.shape.length < 2 || b.shape.length < 2 || b.shape[1] !== rank) {
      mismatches.push(`${path}: A ${fmt(a.shape)} vs B ${fmt(b.shape)}`);
      continue;
    }
    const declared = patternValue(meta?.rank_pattern, path) ?? metaRank;
    if (declared !== undefined && declared !== rank) {
      mismatches.push(`${path}: the metadata says r = ${declared}, A is ${fmt(a.shape)}`);
      continue;
    }
    const alpha = patternValue(meta?.alpha_pattern, path) ?? metaAlpha ?? p.alpha ?? rank;
    adapters.push({ path, a, b, rank, alpha });
  }
  if (mismatches.length > 0) {
    throw new LoraError(`${source}: rank mismatch: ${listSome(mismatches)}`);
  }
  const layout = layouts.size === 1 ? [...layouts][0]! : 'diffusers';
  return {
    prefix,
    layout,
    adapters,
    alphaFrom: metaAlpha !== undefined ? 'metadata' : anyAlphaKey ? 'alpha-keys' : 'rank',
  };
}

/** The layer at `path`, or null. */
function layerOf(modules: ReadonlyMap<string, Module>, path: string): LoraTargetLayer | null {
  const m = modules.get(path);
  return m instanceof Linear || m instanceof Conv2d ? m : null;
}

/**
 * A LoRA network for `model` from a parsed safetensors file (not attached). Every adapter must
 * sit on a Linear or Conv2d of the model with A and B of its shapes; otherwise a LoraError names
 * the keys that match no layer, or the mis-shaped keys with the shapes expected and found.
 */
export async function loraNetworkFromFile(
  model: Module,
  file: SafetensorsFile,
  source: string,
): Promise<LoraNetwork> {
  const parsed = parseLoraFile(file, source);
  const modules = new Map(model.namedModules());
  const key = (path: string, role: 'A' | 'B'): string => {
    const name =
      parsed.layout === 'peft'
        ? `lora_${role}.weight`
        : role === 'A'
          ? 'lora.down.weight'
          : 'lora.up.weight';
    return `${parsed.prefix === null ? '' : `${parsed.prefix}.`}${path}.${name}`;
  };
  const noModule = parsed.adapters.filter((a) => layerOf(modules, a.path) === null);
  if (noModule.length > 0) {
    throw new LoraError(
      `${source}: ${noModule.length} LoRA adapters match no Linear/Conv2d layer of the model: ` +
        listSome(noModule.map((a) => key(a.path, 'A'))),
    );
  }
  const misShaped: string[] = [];
  for (const a of parsed.adapters) {
    const layer = layerOf(modules, a.path)!;
    const want = loraShapes(layer, a.rank);
    if (fmt(a.a.shape) !== fmt(want.a))
      misShaped.push(`${key(a.path, 'A')} is ${fmt(a.a.shape)}, expected ${fmt(want.a)}`);
    if (fmt(a.b.shape) !== fmt(want.b))
      misShaped.push(`${key(a.path, 'B')} is ${fmt(a.b.shape)}, expected ${fmt(want.b)}`);
  }
  if (misShaped.length > 0) {
    throw new LoraError(`${source}: LoRA weights do not fit the model: ${listSome(misShaped)}`);
  }
  // In the model's order, whatever the file's.
  const order = new Map([...modules.keys()].map((p, i) => [p, i]));
  parsed.adapters.sort((x, y) => order.get(x.path)! - order.get(y.path)!);
  const specs: LoraAdapterSpec[] = parsed.adapters.map((a) => ({
    path: a.path,
    rank: a.rank,
    alpha: a.alpha,
  }));
  const net = createLoraNetwork(model, specs, { init: false });
  const values = new Map<string, Tensor>();
  for (const a of parsed.adapters) {
    values.set(`${a.path}.lora_A.weight`, tensor(a.a.data, a.a.shape, { dtype: 'float32' }));
    values.set(`${a.path}.lora_B.weight`, tensor(a.b.data, a.b.shape, { dtype: 'float32' }));
  }
  try {
    await net.loadStateDict(values, { source });
  } finally {
    for (const t of values.values()) t.dispose();
  }
  return net;
}
