/**
 * LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): a frozen layer
 * W gains a trainable low-rank update
 *
 *   h = W x + s · (α / r) · B A x,      A ∈ R^{r×in},  B ∈ R^{out×r},
 *
 * with A ~ U(±1/√in) (PyTorch's Kaiming-uniform default, as peft) and B = 0, so a fresh adapter
 * leaves the layer's output unchanged. On a Conv2d(in, out, k) A is a convolution to r channels
 * with the layer's kernel, stride, padding and dilation and B a 1×1 convolution r → out (peft's
 * layout): ΔW = B A reshaped to [out, in, k, k]. α/r is the adapter's own scaling, s the scale
 * its network is applied with.
 *
 * A LoraNetwork holds the adapters of one model: a Module tree that mirrors the model's module
 * paths, so its parameter names are peft's (`down_blocks.2.attentions.0.to_q.lora_A.weight`). A
 * network attached to the model wraps each adapted layer's forward; several networks can be
 * attached at once, each with its own scale. Merging folds W ← W + s·(α/r)·B A into the weights
 * (the wrapped forward then stops adding it); unmerging subtracts the same product again.
 */
import {
  add,
  conv2d,
  type Generator,
  linear,
  matmul,
  mul,
  noGrad,
  rand,
  reshape,
  sub,
  type Tensor,
  tidy,
  zeros,
} from '../engine/index.js';
import { defaultBound, defaultInitGenerator } from './init.js';
import { Conv2d, Linear } from './layers.js';
import { Module } from './module.js';

/** The layers an adapter can sit on. */
export type LoraTargetLayer = Linear | Conv2d;

/** diffusers' attention projections, what its LoRA training scripts adapt. */
export const DEFAULT_LORA_TARGETS: readonly string[] = ['to_q', 'to_k', 'to_v', 'to_out.0'];

/** A bad LoRA request or file: names the keys, modules or shapes at fault. */
export class LoraError extends Error {
  override name = 'LoraError';
}

/** peft's rule for a target name: the module path itself, or its last dotted components. */
export function matchesLoraTarget(path: string, target: string): boolean {
  return path === target || path.endsWith(`.${target}`);
}

/** Marks every parameter of a module as not requiring gradients (a frozen base). */
export function freezeParameters(module: Module): void {
  for (const p of module.parameters()) p.requireGrad(false);
}

/** One tensor registered as `weight`, so an adapter's names read `lora_A.weight`. */
class LoraWeight extends Module {
  readonly weight: Tensor;
  constructor(t: Tensor) {
    super();
    this.weight = this.param('weight', t);
  }
}

/** The shapes of A and B for a layer and a rank. */
export function loraShapes(layer: LoraTargetLayer, rank: number): { a: number[]; b: number[] } {
  if (layer instanceof Linear) {
    return { a: [rank, layer.inFeatures], b: [layer.outFeatures, rank] };
  }
  const k = layer.kernelSize;
  return { a: [rank, layer.inChannels, k, k], b: [layer.outChannels, rank, 1, 1] };
}

/** One adapter: A and B for one layer (parameters `lora_A.weight`, `lora_B.weight`). */
export class LoraAdapter extends Module {
  readonly loraA: LoraWeight;
  readonly loraB: LoraWeight;

  /** `a` and `b` must have the shapes of `loraShapes(layer, rank)`. */
  constructor(
    readonly layer: LoraTargetLayer,
    readonly rank: number,
    readonly alpha: number,
    a: Tensor,
    b: Tensor,
  ) {
    super();
    this.loraA = this.child('lora_A', new LoraWeight(a));
    this.loraB = this.child('lora_B', new LoraWeight(b));
  }

  /** α/r. */
  get scaling(): number {
    return this.alpha / this.rank;
  }

  /** B A x (unscaled). */
  delta(x: Tensor): Tensor {
    const a = this.loraA.weight;
    const b = this.loraB.weight;
    if (this.layer instanceof Linear) return linear(linear(x, a), b);
    return conv2d(conv2d(x, a, null, this.layer.opts), b);
  }

  /** ΔW = B A in the layer's weight shape (unscaled). */
  weightDelta(): Tensor {
    const a = this.loraA.weight;
    const b = this.loraB.weight;
    if (this.layer instanceof Linear) return matmul(b, a);
    const w = this.layer.weight.shape;
    const r = this.rank;
    return reshape(matmul(reshape(b, [w[0]!, r]), reshape(a, [r, a.size / r])), w);
  }
}

/** An adapter to create: where, its rank and alpha. */
export interface LoraAdapterSpec {
  path: string;
  rank: number;
  alpha: number;
}

/** The most frequent value (the first of equals in order of appearance). */
function mostCommon(values: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = values[0]!;
  for (const [v, c] of counts) if (c > counts.get(best)!) best = v;
  return best;
}

/** A module that only groups children, so the network's tree can mirror the model's paths. */
class LoraBranch extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.child(name, m);
  }
}

interface LayerHook {
  /** The layer's own forward. */
  base: (x: Tensor) => Tensor;
  attached: { network: LoraNetwork; adapter: LoraAdapter }[];
}

/** The adapters attached to each wrapped layer, in attachment order. */
const hooks = new WeakMap<LoraTargetLayer, LayerHook>();

/** h = W x + Σ over attached, unmerged networks of s·(α/r)·B A x. */
function adaptedForward(hook: LayerHook, x: Tensor): Tensor {
  let y = hook.base(x);
  for (const { network, adapter } of hook.attached) {
    if (network.merged || network.scale === 0) continue;
    const f = network.scale * adapter.scaling;
    const d = adapter.delta(x);
    y = add(y, f === 1 ? d : mul(d, f));
  }
  return y;
}

function attachTo(layer: LoraTargetLayer, network: LoraNetwork, adapter: LoraAdapter): void {
  let hook = hooks.get(layer);
  if (hook === undefined) {
    const h: LayerHook = { base: layer.forward.bind(layer), attached: [] };
    layer.forward = (x: Tensor): Tensor => adaptedForward(h, x);
    hooks.set(layer, h);
    hook = h;
  }
  hook.attached.push({ network, adapter });
}

function detachFrom(layer: LoraTargetLayer, network: LoraNetwork): void {
  const hook = hooks.get(layer);
  if (hook === undefined) return;
  hook.attached = hook.attached.filter((a) => a.network !== network);
  if (hook.attached.length === 0) {
    // Back to the class's own forward.
    Reflect.deleteProperty(layer, 'forward');
    hooks.delete(layer);
  }
}

/** The networks attached to a layer, in order (empty when none). */
export function attachedLoraNetworks(layer: LoraTargetLayer): LoraNetwork[] {
  return hooks.get(layer)?.attached.map((a) => a.network) ?? [];
}

/** The adapters of one model (see the module comment). */
export class LoraNetwork extends LoraBranch {
  /** Adapters by the path of their layer in the model, in creation order. */
  readonly adapters = new Map<string, LoraAdapter>();
  /** s: how strongly the network applies, in the forward pass and in merges. */
  scale = 1;
  #attached = false;
  #merged: number | null = null;
  readonly #branches = new Map<string, LoraBranch>();

  /** Whether the network's product is folded into the weights (and with which scale). */
  get merged(): boolean {
    return this.#merged !== null;
  }

  get attached(): boolean {
    return this.#attached;
  }

  /** Registers an adapter for the layer at `path` (one per path). */
  addAdapter(path: string, adapter: LoraAdapter): LoraAdapter {
    if (this.adapters.has(path)) throw new LoraError(`two adapters for module '${path}'`);
    const parts = path.split('.');
    let parent: LoraBranch | null = null; // null: this network itself
    let prefix = '';
    for (const part of parts.slice(0, -1)) {
      prefix = prefix === '' ? part : `${prefix}.${part}`;
      let next = this.#branches.get(prefix);
      if (next === undefined) {
        next = (parent ?? this).add(part, new LoraBranch());
        this.#branches.set(prefix, next);
      }
      parent = next;
    }
    (parent ?? this).add(parts[parts.length - 1]!, adapter);
    this.adapters.set(path, adapter);
    return adapter;
  }

  /** Wraps the adapted layers' forward so that they add this network's product. */
  attach(scale = this.scale): this {
    this.scale = scale;
    if (this.#attached) return this;
    for (const a of this.adapters.values()) attachTo(a.layer, this, a);
    this.#attached = true;
    return this;
  }

  /** Removes this network from the layers' forward (the weights keep any merge). */
  detach(): this {
    for (const a of this.adapters.values()) detachFrom(a.layer, this);
    this.#attached = false;
    return this;
  }

  /** W ← W + s·(α/r)·B A for every adapter, with s = the current scale. */
  merge(): this {
    if (this.#merged !== null) throw new LoraError('the LoRA network is already merged');
    const s = this.scale;
    this.#foldInto(s, add);
    this.#merged = s;
    return this;
  }

  /** W ← W − s·(α/r)·B A with the scale of the merge: the base weights within float rounding. */
  unmerge(): this {
    const s = this.#merged;
    if (s === null) throw new LoraError('the LoRA network is not merged');
    this.#foldInto(s, sub);
    this.#merged = null;
    return this;
  }

  /**
   * The peft LoraConfig fields of the network: r and α as their most common values, the others
   * as rank_pattern / alpha_pattern by module path; target_modules the adapted paths.
   */
  peftConfig(): Record<string, unknown> {
    const adapters = [...this.adapters];
    if (adapters.length === 0) throw new LoraError('the LoRA network has no adapters');
    const r = mostCommon(adapters.map(([, a]) => a.rank));
    const alpha = mostCommon(adapters.map(([, a]) => a.alpha));
    const pattern = (key: 'rank' | 'alpha', common: number): Record<string, number> =>
      Object.fromEntries(
        adapters.filter(([, a]) => a[key] !== common).map(([p, a]) => [p, a[key]]),
      );
    return {
      r,
      lora_alpha: alpha,
      target_modules: adapters.map(([p]) => p),
      rank_pattern: pattern('rank', r),
      alpha_pattern: pattern('alpha', alpha),
      lora_dropout: 0,
      bias: 'none',
      init_lora_weights: true,
      use_rslora: false,
      use_dora: false,
    };
  }

  /** peftConfig() as JSON text (peft's adapter_config.json fields). */
  configJson(): string {
    return `${JSON.stringify(this.peftConfig(), null, 2)}\n`;
  }

  #foldInto(s: number, op: (a: Tensor, b: Tensor) => Tensor): void {
    noGrad(() =>
      tidy(() => {
        for (const a of this.adapters.values()) {
          const w = a.layer.weight;
          w.assign(op(w, mul(a.weightDelta(), s * a.scaling)));
        }
      }),
    );
  }
}

/**
 * The Linear and Conv2d layers of `model` whose paths match one of `targets` (peft's rule:
 * the path itself or its last components), in the model's order. Throws a LoraError when a
 * target names another kind of module, a grouped convolution, or when nothing matches.
 */
export function findLoraTargets(
  model: Module,
  targets: readonly string[] = DEFAULT_LORA_TARGETS,
): [string, LoraTargetLayer][] {
  const out: [string, LoraTargetLayer][] = [];
  for (const [path, m] of model.namedModules()) {
    if (!targets.some((t) => matchesLoraTarget(path, t))) continue;
    if (m instanceof Linear) {
      out.push([path, m]);
    } else if (m instanceof Conv2d) {
      if ((m.opts.groups ?? 1) !== 1) {
        throw new LoraError(
          `LoRA target '${path}' is a grouped Conv2d (groups ${m.opts.groups}); only groups 1 is supported`,
        );
      }
      out.push([path, m]);
    } else {
      throw new LoraError(
        `LoRA target '${path}' is a ${m.constructor.name}; adapters go on Linear and Conv2d layers`,
      );
    }
  }
  if (out.length === 0) {
    throw new LoraError(`no module of the model matches the LoRA targets ${targets.join(', ')}`);
  }
  return out;
}

/** The layer at `path` of `model`, checked to be a Linear or Conv2d. */
function layerAt(modules: ReadonlyMap<string, Module>, path: string): LoraTargetLayer {
  const m = modules.get(path);
  if (m === undefined) throw new LoraError(`the model has no module '${path}'`);
  if (m instanceof Linear || m instanceof Conv2d) return m;
  throw new LoraError(`module '${path}' is a ${m.constructor.name}, not a Linear or Conv2d`);
}

export interface CreateLoraOptions {
  /** Draw A from U(±1/√fan_in) with this stream (default: the shared init stream); else A = 0. */
  init?: boolean;
  generator?: Generator;
}

/**
 * A network with one adapter per spec, its tensors on each layer's backend and dtype: A drawn
 * as in the module comment (or zero with `init: false`, for weights loaded next), B = 0.
 * Not attached.
 */
export function createLoraNetwork(
  model: Module,
  specs: readonly LoraAdapterSpec[],
  opts: CreateLoraOptions = {},
): LoraNetwork {
  const modules = new Map(model.namedModules());
  const g = opts.generator ?? defaultInitGenerator();
  const net = new LoraNetwork();
  for (const spec of specs) {
    if (!Number.isInteger(spec.rank) || spec.rank < 1) {
      throw new LoraError(
        `LoRA rank for '${spec.path}' must be a positive integer, got ${spec.rank}`,
      );
    }
    if (!(Number.isFinite(spec.alpha) && spec.alpha > 0)) {
      throw new LoraError(`LoRA alpha for '${spec.path}' must be positive, got ${spec.alpha}`);
    }
    const layer = layerAt(modules, spec.path);
    const { a, b } = loraShapes(layer, spec.rank);
    const where = { dtype: layer.weight.dtype, backend: layer.weight.backend };
    const fanIn = a.slice(1).reduce((n, d) => n * d, 1);
    const bound = defaultBound(fanIn);
    const A =
      opts.init === false
        ? zeros(a, where)
        : tidy(() => add(mul(rand(a, { generator: g, ...where }), 2 * bound), -bound));
    net.addAdapter(spec.path, new LoraAdapter(layer, spec.rank, spec.alpha, A, zeros(b, where)));
  }
  return net;
}

export interface InjectLoraOptions {
  rank: number;
  /** α (default: the rank, so α/r = 1). */
  alpha?: number;
  /** Target module names (default: DEFAULT_LORA_TARGETS). */
  targets?: readonly string[];
  generator?: Generator;
  /** s (default 1). */
  scale?: number;
}

/** Fresh adapters (B = 0) on every target layer of `model`, attached. */
export function injectLora(model: Module, opts: InjectLoraOptions): LoraNetwork {
  const alpha = opts.alpha ?? opts.rank;
  const specs = findLoraTargets(model, opts.targets).map(([path]) => ({
    path,
    rank: opts.rank,
    alpha,
  }));
  return createLoraNetwork(model, specs, { generator: opts.generator }).attach(opts.scale ?? 1);
}
