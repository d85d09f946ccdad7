/**
 * Module: a tree of named parameters and child modules. Parameter names are dotted paths in
 * registration order (`down_blocks.0.resnets.1.conv1.weight`), the names diffusers uses, so a
 * state dict maps one-to-one onto a `diffusion_pytorch_model.safetensors` file.
 */
import { type Backend, type DType, fmtShapeOf, type Tensor, transfer } from '../engine/index.js';

export type StateDict = Map<string, Tensor>;

export interface LoadOptions {
  /** Fail on missing and unexpected keys (default true). Shape mismatches always fail. */
  strict?: boolean;
  /** Names the source in error messages (a file path). */
  source?: string;
}

export class Module {
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  /** Registers a trainable parameter (marked requireGrad) under `name`. */
  protected param(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    t.requireGrad();
    this.#params.set(name, t);
    return t;
  }

  /** Registers a child module under `name`. */
  protected child<M extends Module>(name: string, m: M): M {
    this.#checkName(name);
    this.#children.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (name === '' || name.includes('.'))
      throw new Error(`module member name '${name}' must be non-empty without dots`);
    if (this.#params.has(name) || this.#children.has(name))
      throw new Error(`module member '${name}' registered twice`);
  }

  /** Every parameter with its dotted path, depth-first in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    // A prefix names this module's path (as in namedModules): 'enc' gives 'enc.weight'.
    const stack: [string, Module][] = [[prefix === '' ? '' : `${prefix}.`, this]];
    while (stack.length > 0) {
      const [p, m] = stack.pop()!;
      for (const [n, t] of m.#params) out.push([p + n, t]);
      const kids = [...m.#children].reverse();
      for (const [n, c] of kids) stack.push([`${p}${n}.`, c]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, c] of this.#children)
      out.push(...c.namedModules(prefix === '' ? n : `${prefix}.${n}`));
    return out;
  }

  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /** Sets training mode (dropout on) for this module and all children. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  stateDict(): StateDict {
    return new Map(this.namedParameters());
  }

  /**
   * Copies values from `sd` into the parameters (cast to each parameter's dtype and moved to its
   * backend). Checks everything before changing anything: missing, unexpected and mis-shaped
   * keys are all named in one error.
   */
  async loadStateDict(sd: ReadonlyMap<string, Tensor>, opts: LoadOptions = {}): Promise<void> {
    const strict = opts.strict ?? true;
    const own = new Map(this.namedParameters());
    const missing = [...own.keys()].filter((k) => !sd.has(k));
    const unexpected = [...sd.keys()].filter((k) => !own.has(k));
    const misShaped: string[] = [];
    for (const [k, p] of own) {
      const s = sd.get(k);
      if (s && !p.sameShape(s))
        misShaped.push(`${k}: expected ${fmtShapeOf(p)}, found ${fmtShapeOf(s)}`);
    }
    checkStateDictKeys(`loadStateDict${opts.source ? ` (${opts.source})` : ''}`, {
      misShaped,
      missing: strict ? missing : [],
      unexpected: strict ? unexpected : [],
    });
    for (const [k, p] of own) {
      const s = sd.get(k);
      if (!s) continue;
      const v = await transfer(s, p.backend, p.dtype);
      p.setData(v);
      v.dispose();
    }
  }

  /** Moves every parameter to a backend and/or dtype, in place. */
  async to(target: { backend?: Backend; dtype?: DType }): Promise<this> {
    for (const p of this.parameters()) {
      const v = await transfer(p, target.backend ?? p.backend, target.dtype ?? p.dtype);
      p.setData(v);
      v.dispose();
    }
    return this;
  }
}

/** Children named 0, 1, 2, ... (diffusers' nn.ModuleList). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: readonly M[]) {
    super();
    this.items = [...items];
    this.items.forEach((m, i) => this.child(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i];
    if (m === undefined)
      throw new Error(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
}

/** The keys a state-dict load found wrong, each entry a key (mis-shaped: with the shapes). */
export interface StateDictKeyProblems {
  misShaped: readonly string[];
  missing: readonly string[];
  unexpected: readonly string[];
}

/**
 * Throws one error `${where}: …` naming every mis-shaped, missing and unexpected key of a
 * state-dict load (in that order, each kind once); returns when there are none.
 */
export function checkStateDictKeys(where: string, p: StateDictKeyProblems): void {
  const problems: string[] = [];
  if (p.misShaped.length > 0) problems.push(`mis-shaped: ${p.misShaped.join('; ')}`);
  if (p.missing.length > 0) problems.push(`missing: ${p.missing.join(', ')}`);
  if (p.unexpected.length > 0) problems.push(`unexpected: ${p.unexpected.join(', ')}`);
  if (problems.length > 0) throw new Error(`${where}: ${problems.join(' | ')}`);
}
