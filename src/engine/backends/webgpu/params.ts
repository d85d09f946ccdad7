/**
 * Uniform parameter blocks. One description (a list of named u32/i32/f32 fields, scalars or
 * fixed-length arrays) gives both the WGSL accessors a kernel reads and the packing the runtime
 * writes, so no offset is computed by hand in two places. Every block fits one 256-byte slot of
 * the runtime's parameter arena (bound with a dynamic offset).
 */

export type ParamType = 'u32' | 'i32' | 'f32';

export interface ParamField {
  readonly name: string;
  readonly type: ParamType;
  /** Array length; a scalar when absent. */
  readonly count?: number;
}

/** A field's type, or its type and array length. */
export type FieldSpec = ParamType | { readonly type: ParamType; readonly count: number };

/**
 * The fields of a parameter block written as a record of name → type (or type and array
 * length), in the record's order: `paramFields({ n: 'u32', scale: 'f32' })`. (Names are never
 * integers, which a record would move to the front.)
 */
export function paramFields(spec: Readonly<Record<string, FieldSpec>>): ParamField[] {
  return Object.entries(spec).map(([name, f]) =>
    typeof f === 'string' ? { name, type: f } : { name, type: f.type, count: f.count },
  );
}

export type ParamValues = Readonly<Record<string, number | readonly number[]>>;

/** Bytes per parameter slot: the largest minUniformBufferOffsetAlignment WebGPU allows. */
export const PARAM_SLOT_BYTES = 256;
const SLOT_WORDS = PARAM_SLOT_BYTES / 4;

export class ParamLayout {
  readonly fields: readonly ParamField[];
  /** Word offset of each field. */
  readonly offsets = new Map<string, number>();
  readonly words: number;

  constructor(fields: readonly ParamField[]) {
    this.fields = fields;
    let at = 0;
    for (const f of fields) {
      if (this.offsets.has(f.name)) throw new Error(`ParamLayout: field ${f.name} repeated`);
      this.offsets.set(f.name, at);
      at += f.count ?? 1;
    }
    if (at > SLOT_WORDS) {
      throw new Error(`ParamLayout: ${at} words do not fit a ${SLOT_WORDS}-word slot`);
    }
    this.words = at;
  }

  /** The uniform declaration at `binding` and one accessor `p_<name>()` per field. */
  wgsl(binding: number): string {
    const vecs = Math.max(1, Math.ceil(this.words / 4));
    const lines = [
      `struct Params { w: array<vec4<u32>, ${vecs}> }`,
      `@group(0) @binding(${binding}) var<uniform> params: Params;`,
    ];
    for (const f of this.fields) {
      const off = this.offsets.get(f.name)!;
      const conv = (e: string): string => (f.type === 'u32' ? e : `bitcast<${f.type}>(${e})`);
      if (f.count === undefined) {
        lines.push(
          `fn p_${f.name}() -> ${f.type} { return ${conv(`params.w[${off >> 2}][${off & 3}]`)}; }`,
        );
      } else {
        lines.push(
          `fn p_${f.name}(i: u32) -> ${f.type} { let j = ${off}u + i; ` +
            `return ${conv('params.w[j >> 2u][j & 3u]')}; }`,
        );
      }
    }
    return lines.join('\n');
  }

  /** Writes values into the arena views at word `base`. Every field must be given. */
  pack(values: ParamValues, u32: Uint32Array, i32: Int32Array, f32: Float32Array, base: number) {
    for (const f of this.fields) {
      const v = values[f.name];
      if (v === undefined) throw new Error(`ParamLayout: missing value for ${f.name}`);
      const off = base + this.offsets.get(f.name)!;
      const list = typeof v === 'number' ? [v] : v;
      const n = f.count ?? 1;
      if (list.length > n) {
        throw new Error(`ParamLayout: ${f.name} takes ${n} values, got ${list.length}`);
      }
      const view = f.type === 'u32' ? u32 : f.type === 'i32' ? i32 : f32;
      for (let i = 0; i < list.length; i++) view[off + i] = list[i]!;
      for (let i = list.length; i < n; i++) view[off + i] = 0;
    }
  }
}
