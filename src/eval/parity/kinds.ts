/**
 * Fixture kinds: how the parity runner recognizes a fixture and checks it. A fixture is a JSON
 * file with a same-named `.safetensors` beside it (`case.json` + `case.safetensors`, or a model
 * folder's `fixture.json` + `fixture.safetensors`); each kind decides from the JSON whether it is
 * one of its own. New kinds (UNet, VAE, ...) register themselves with `registerFixtureKind`.
 */
import type { Backend, FloatDType } from '../../engine/index.js';

export interface FixtureCandidate {
  /** Path of the JSON file. */
  jsonPath: string;
  /** Path of the same-named .safetensors file. */
  tensorsPath: string;
  /** Path relative to the directory being run, without extension (for display). */
  name: string;
  /** The parsed JSON. */
  json: Record<string, unknown>;
}

export interface RunContext {
  backend: Backend;
  /** float64 (CPU reference) or float32 (as a GPU runs). */
  dtype: FloatDType;
}

/** One checked record: an error measure against its tolerance. */
export interface RecordResult {
  name: string;
  /** 'rel-l2': ‖a−b‖₂/‖b‖₂ (max over steps for stacked records); 'max-rel': max|a−b|/max|b|. */
  metric: 'rel-l2' | 'max-rel' | 'count';
  error: number;
  tolerance: number;
  /** Where a tolerance other than the fixed ones comes from (printed beside it). */
  toleranceNote?: string;
  ok: boolean;
}

export interface FixtureKind {
  /** Short name, shown in the output ('scheduler', 'unet', ...). */
  name: string;
  /** Whether this candidate is a fixture of this kind. */
  detect(candidate: FixtureCandidate): boolean;
  /** Runs every check of the fixture. Throwing marks the fixture failed with the message. */
  run(candidate: FixtureCandidate, ctx: RunContext): Promise<RecordResult[]>;
}

const kinds: FixtureKind[] = [];

/** Adds a fixture kind (a kind of the same name is replaced). */
export function registerFixtureKind(kind: FixtureKind): void {
  const i = kinds.findIndex((k) => k.name === kind.name);
  if (i >= 0) kinds[i] = kind;
  else kinds.push(kind);
}

export function fixtureKinds(): readonly FixtureKind[] {
  return kinds;
}

/** The kind that understands a candidate, or null. */
export function detectKind(candidate: FixtureCandidate): FixtureKind | null {
  return kinds.find((k) => k.detect(candidate)) ?? null;
}

/** What the JSON says the fixture is (for the "not understood" message). */
export function describeCandidate(c: FixtureCandidate): string {
  for (const key of ['scheduler_class', 'model_class', '_class_name', 'kind', 'type']) {
    const v = c.json[key];
    if (typeof v === 'string') return `${key} ${v}`;
  }
  return 'no known class field';
}
