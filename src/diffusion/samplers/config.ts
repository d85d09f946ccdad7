/**
 * diffusers scheduler configs at the boundary: a `config.json` object (snake_case, e.g.
 * `beta_schedule`, `prediction_type`, `lambda_min_clipped: "-inf"`) becomes our camelCase options
 * and back. Each scheduler declares a spec: its options with diffusers' defaults, and the diffusers
 * arguments we do not implement, which are accepted only at their default value.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export interface SchedulerSpec<O extends object> {
  /** diffusers' class name. */
  readonly className: string;
  /** Our options with diffusers' default values (camelCase of the constructor arguments). */
  readonly defaults: Readonly<O>;
  /** diffusers constructor arguments we do not implement, with the only value we accept. */
  readonly unsupported: Readonly<Record<string, JsonValue>>;
}

export interface ReadConfigResult {
  /** camelCase options (only keys present in the input). */
  options: Record<string, unknown>;
  /**
   * Keys skipped as diffusers' `from_config` skips them: metadata (`_class_name`, ...) and
   * arguments of other scheduler classes (a DDIM config loaded into Euler).
   */
  ignored: string[];
}

/** The one key converter of the config files: 'warmup_steps' (or 'warmup-steps') → 'warmupSteps'. */
export function snakeToCamel(s: string): string {
  return s.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function camelToSnake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function jsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** JSON has no ±∞/NaN; diffusers' configs (and the fixtures) spell them as strings. */
function fromJsonNumber(v: unknown): unknown {
  if (v === '-inf' || v === '-Infinity') return -Infinity;
  if (v === 'inf' || v === 'Infinity') return Infinity;
  if (v === 'nan' || v === 'NaN') return NaN;
  return v;
}

function toJson(v: unknown): JsonValue {
  if (typeof v === 'number' && !Number.isFinite(v)) {
    return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  }
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return v.map(toJson);
  return v as JsonValue;
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/**
 * Maps a diffusers config to options for the scheduler of `spec`. Accepts snake_case (diffusers)
 * or camelCase keys. Throws one error naming every key we do not support with a non-default value
 * and every value of the wrong type. `otherClassKeys`: arguments of the other scheduler classes,
 * ignored as diffusers ignores them; a key unknown to every class is an error unless null/false.
 */
export function readDiffusersConfig(
  spec: SchedulerSpec<object>,
  config: Readonly<Record<string, unknown>>,
  otherClassKeys: ReadonlySet<string> = new Set(),
): ReadConfigResult {
  const defaults = spec.defaults as Record<string, unknown>;
  const options: Record<string, unknown> = {};
  const ignored: string[] = [];
  const problems: string[] = [];
  for (const [rawKey, rawValue] of Object.entries(config)) {
    if (rawKey.startsWith('_')) {
      ignored.push(rawKey);
      continue;
    }
    const key = camelToSnake(rawKey);
    const camel = snakeToCamel(key);
    if (Object.hasOwn(defaults, camel)) {
      const def = defaults[camel];
      const value = typeof def === 'number' ? fromJsonNumber(rawValue) : rawValue;
      const ok =
        value === undefined ||
        def === null ||
        value === null ||
        kindOf(value) === kindOf(def) ||
        (Array.isArray(value) && ArrayBuffer.isView(def));
      if (!ok) {
        problems.push(`'${key}' must be a ${kindOf(def)}, got ${JSON.stringify(rawValue)}`);
      } else if (value !== undefined) {
        options[camel] = value;
      }
    } else if (Object.hasOwn(spec.unsupported, key)) {
      const def = spec.unsupported[key];
      if (!jsonEqual(toJson(fromJsonNumber(rawValue)), def)) {
        problems.push(
          `'${key}' = ${JSON.stringify(rawValue)} is not supported (only ${JSON.stringify(def)})`,
        );
      }
    } else if (otherClassKeys.has(key) || rawValue === null || rawValue === false) {
      ignored.push(rawKey);
    } else {
      problems.push(`'${key}' is not a ${spec.className} option`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`${spec.className} config: ${problems.join('; ')}`);
  }
  return { options, ignored };
}

/** The full diffusers config object (sorted snake_case keys, `_class_name` first). */
export function writeDiffusersConfig(
  spec: SchedulerSpec<object>,
  options: Readonly<object>,
): Record<string, JsonValue> {
  const all: Record<string, JsonValue> = { ...spec.unsupported };
  for (const [k, v] of Object.entries({ ...spec.defaults, ...options })) {
    all[camelToSnake(k)] = toJson(v);
  }
  const out: Record<string, JsonValue> = { _class_name: spec.className };
  for (const k of Object.keys(all).sort()) out[k] = all[k]!;
  return out;
}

/** Merges options over defaults, skipping undefined values. */
export function resolveOptions<O extends object>(defaults: Readonly<O>, options: Partial<O>): O {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    if (!Object.hasOwn(defaults, k)) throw new Error(`unknown option '${k}'`);
    out[k] = v;
  }
  return out as O;
}
