/** Reading a fixture's `.safetensors` into the run's dtype and backend, and results back out. */
import { type Tensor, tensor } from '../../engine/index.js';
import type { SafetensorsEntry } from '../../nn/safetensors.js';
import { readSafetensors } from '../../nn/safetensors-fs.js';
import type { FixtureCandidate, RunContext } from './kinds.js';

/** The tensors of one fixture, by name. */
export class FixtureTensors {
  constructor(
    private readonly entries: Map<string, SafetensorsEntry>,
    private readonly ctx: RunContext,
  ) {}

  /** The tensors beside the fixture's json. */
  static async open(c: FixtureCandidate, ctx: RunContext): Promise<FixtureTensors> {
    return new FixtureTensors((await readSafetensors(c.tensorsPath)).tensors, ctx);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (e === undefined) throw new Error(`tensor '${name}' is missing from the fixture`);
    return e;
  }

  /** Values as float64. */
  values(name: string): Float64Array {
    return Float64Array.from(this.entry(name).data);
  }

  /**
   * A tensor of the run's dtype and backend (float inputs are stored F32; the f64 run upcasts
   * them); `index` picks one slice along the first axis.
   */
  tensor(name: string, index?: number): Tensor {
    const e = this.entry(name);
    const opts = { dtype: this.ctx.dtype, backend: this.ctx.backend };
    if (index === undefined) return tensor(Float64Array.from(e.data), e.shape, opts);
    const [n, ...rest] = e.shape;
    if (index >= n!) throw new Error(`'${name}' has ${n} entries; entry ${index} was asked for`);
    const per = rest.reduce((p, d) => p * d, 1);
    return tensor(Float64Array.from(e.data.subarray(index * per, (index + 1) * per)), rest, opts);
  }
}

/** A tensor's values as float64 on the host. */
export async function read(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

/** The arrays one after another. */
export function joinAll(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
