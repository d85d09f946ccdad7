/**
 * Where a denoiser's conditioning c comes from: a value the trainer and the pipelines are given,
 * so neither branches on the kind of model. A source turns what the user asks for (a class id, a
 * prompt, or nothing) into the tensors of `Conditioning`, and owns the null condition ∅ that
 * classifier-free guidance trains with (Ho & Salimans 2022): the null class for class labels, the
 * empty prompt for text.
 */
import { type Backend, concat, type Tensor, tensor } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { Conditioning } from '../nn/models/index.js';

/** What one image is conditioned on: a class id, a prompt, or null for the null condition ∅. */
export type ConditionValue = number | string | null;

export type ConditioningKind = 'none' | 'class' | 'text';

export interface ConditionSource {
  readonly kind: ConditioningKind;
  /** Trainable modules besides the denoiser (the text encoder τ_θ), trained jointly with it. */
  readonly components: readonly ConditionComponent[];
  /** Files of the pipeline folder besides the components (the tokenizer), by relative path. */
  files(): { path: string; bytes: Uint8Array }[];
  /** Whether it has a null condition ∅, so that classifier-free guidance can be used. */
  readonly hasNull: boolean;
  /**
   * The conditioning of n images: values[i] for image i (null: ∅). Throws a ConditionError for a
   * value this source cannot take (a prompt for a class model, an unknown class id).
   */
  encode(values: readonly ConditionValue[], backend: Backend): Conditioning;
  /** The value a training sample is conditioned on (its label, or one of its captions). */
  trainingValue(sample: { index: number; label: number | undefined }, u: number): ConditionValue;
}

/** A trainable module of a condition source, saved as `<name>/config.json` + `<name>/<weightsName>`. */
export interface ConditionComponent {
  /** The pipeline folder name ('text_encoder'). */
  readonly name: string;
  readonly module: Module & { configJson(): string };
  /** The weights file name inside the folder ('model.safetensors'). */
  readonly weightsName: string;
  /** model_index.json's [library, class] of the component. */
  readonly libraryClass: readonly [string, string];
}

export class ConditionError extends Error {
  override name = 'ConditionError';
}

/** An unconditional model: every value must be null, the conditioning is empty. */
export function unconditional(): ConditionSource {
  return {
    kind: 'none',
    components: [],
    files: () => [],
    hasNull: false,
    encode(values) {
      if (values.some((v) => v !== null)) {
        throw new ConditionError(
          `the model is unconditional; it takes no ${typeof values.find((v) => v !== null) === 'string' ? 'prompt' : 'class'}`,
        );
      }
      return {};
    },
    trainingValue: () => null,
  };
}

export interface ClassConditionOptions {
  numClasses: number;
  /** The id of ∅ (num_classes by Sumi's convention); null when the model was trained without. */
  nullClassId: number | null;
  classNames?: readonly string[];
}

/** Class labels through the denoiser's class embedding; ∅ is the null class. */
export function classConditioning(opts: ClassConditionOptions): ConditionSource {
  const k = opts.numClasses;
  const names = opts.classNames;
  const id = (v: ConditionValue): number => {
    if (v === null) {
      if (opts.nullClassId === null) {
        throw new ConditionError('the model was trained without a null class (no guidance)');
      }
      return opts.nullClassId;
    }
    if (typeof v === 'string') {
      const byName = names?.indexOf(v) ?? -1;
      if (byName >= 0) return byName;
      throw new ConditionError(
        `the model is class-conditional, not text-conditional: give a class id, not the prompt '${v}'`,
      );
    }
    if (!Number.isInteger(v) || v < 0 || v >= k) {
      throw new ConditionError(
        `class ${v} is not one of the model's classes 0..${k - 1}` +
          (names ? ` (${names.join(', ')})` : ''),
      );
    }
    return v;
  };
  return {
    kind: 'class',
    components: [],
    files: () => [],
    hasNull: opts.nullClassId !== null,
    encode(values, backend) {
      const ids = Int32Array.from(values, id);
      return { classLabels: tensor(ids, [ids.length], { dtype: 'int32', backend }) };
    },
    trainingValue({ label }) {
      if (label === undefined) throw new ConditionError('a training sample without a label');
      return label;
    },
  };
}

/** [c_a; c_b]: the conditioning of a batch followed by that of another (one batched forward). */
export function concatConditioning(a: Conditioning, b: Conditioning): Conditioning {
  const out: Conditioning = {};
  const keys = [
    'classLabels',
    'encoderHiddenStates',
    'encoderAttentionMask',
    'concatImage',
    'controlnetCond',
  ] as const;
  for (const key of keys) {
    const x = a[key] ?? null;
    const y = b[key] ?? null;
    if ((x === null) !== (y === null)) {
      throw new Error(`concatConditioning: '${key}' is given for one batch only`);
    }
    if (x !== null && y !== null) out[key] = concat([x, y], 0);
  }
  return out;
}

/** Frees the tensors of a conditioning. */
export function disposeConditioning(c: Conditioning): void {
  c.classLabels?.dispose();
  c.encoderHiddenStates?.dispose();
  c.encoderAttentionMask?.dispose();
  c.concatImage?.dispose();
  c.controlnetCond?.dispose();
}

/** The tensors of a conditioning (to keep them alive across memory scopes). */
export function conditioningTensors(c: Conditioning): Tensor[] {
  return [
    c.classLabels,
    c.encoderHiddenStates,
    c.encoderAttentionMask,
    c.concatImage,
    c.controlnetCond,
  ].filter((t): t is Tensor => t !== null && t !== undefined);
}
