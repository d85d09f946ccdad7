/**
 * diffusers `config.json` at the boundary: a model's config is the plain object diffusers writes,
 * with its snake_case keys. Each model declares a schema (diffusers' default for every key and a
 * rule for the values Sumi supports); `resolveConfig` fills in the defaults and rejects unknown
 * keys and unsupported values in one error that names them all. Keys starting with `_`
 * (`_class_name`, `_diffusers_version`, `_name_or_path`) are metadata.
 */

/** A value of a JSON config. */
export type ConfigValue =
  | null
  | boolean
  | number
  | string
  | readonly ConfigValue[]
  | { readonly [key: string]: ConfigValue };

/** Checks one value: returns what is wrong with it, or null when it is fine. */
export type Rule = (value: unknown) => string | null;

export interface ConfigSchema<C> {
  /** diffusers' class name, written as `_class_name`. */
  className: string;
  /** diffusers' default for every key the class takes. */
  defaults: C;
  /** What Sumi accepts for each key. */
  rules: { readonly [K in keyof C]: Rule };
  /** Checks across keys (lengths that must agree, ...); each returns problems. */
  check?: (config: C) => string[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The diffusers version written into configs Sumi creates (the fixtures' version). */
export const DIFFUSERS_VERSION = '0.40.0.dev0';

export interface ResolvedConfig<C> {
  config: C;
  /** The `_`-prefixed entries of the source. */
  meta: Record<string, ConfigValue>;
}

const show = (v: unknown): string => (v === undefined ? 'undefined' : JSON.stringify(v));

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Fills in defaults and validates `raw` (a parsed config.json, or a partial config written in
 * code). Throws a ConfigError listing every unknown key and every unsupported or invalid value.
 */
export function resolveConfig<C extends object>(
  schema: ConfigSchema<C>,
  raw: unknown,
  source = 'config',
): ResolvedConfig<C> {
  const where = `${schema.className} ${source}`;
  if (!isPlainObject(raw)) throw new ConfigError(`${where}: expected a JSON object`);
  const meta: Record<string, ConfigValue> = {};
  const values: Record<string, unknown> = { ...(schema.defaults as Record<string, unknown>) };
  const problems: string[] = [];
  const known = new Set(Object.keys(schema.defaults));
  for (const [key, value] of Object.entries(raw)) {
    if (key.startsWith('_')) {
      meta[key] = value as ConfigValue;
      continue;
    }
    if (!known.has(key)) {
      problems.push(`${key}: unknown key`);
      continue;
    }
    values[key] = value;
  }
  const className = meta._class_name;
  if (className !== undefined && className !== schema.className) {
    problems.push(`_class_name: ${show(className)}, expected ${show(schema.className)}`);
  }
  const rules = schema.rules as Record<string, Rule>;
  for (const key of known) {
    const err = rules[key]!(values[key]);
    if (err !== null) problems.push(`${key}: ${err}`);
  }
  if (problems.length === 0 && schema.check) problems.push(...schema.check(values as C));
  if (problems.length > 0) throw new ConfigError(`${where}: ${problems.join('; ')}`);
  return { config: values as C, meta };
}

/**
 * The config.json text diffusers would write: `_class_name` and `_diffusers_version` first, keys
 * sorted, two-space indent, a final newline (diffusers' `to_json_string`). Every key is written,
 * defaults included, so the file means the same under any diffusers version.
 */
export function configToJson(className: string, config: object): string {
  const out: Record<string, unknown> = {
    _class_name: className,
    _diffusers_version: DIFFUSERS_VERSION,
    ...config,
  };
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k];
  return `${JSON.stringify(sorted, null, 2)}\n`;
}

// ---- rules ------------------------------------------------------------------------------------

export const anyValue: Rule = () => null;

export const bool: Rule = (v) =>
  typeof v === 'boolean' ? null : `expected true or false, got ${show(v)}`;

export const num: Rule = (v) =>
  typeof v === 'number' && Number.isFinite(v) ? null : `expected a number, got ${show(v)}`;

export const positive: Rule = (v) =>
  typeof v === 'number' && v > 0 && Number.isFinite(v)
    ? null
    : `expected a positive number, got ${show(v)}`;

/** A probability in [0, 1). */
export const probability: Rule = (v) =>
  typeof v === 'number' && v >= 0 && v < 1 ? null : `expected a number in [0, 1), got ${show(v)}`;

export function int(min = 0): Rule {
  return (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min
      ? null
      : `expected an integer >= ${min}, got ${show(v)}`;
}

export function nullable(rule: Rule): Rule {
  return (v) => (v === null ? null : rule(v));
}

/** One of the listed values. `others` are values diffusers knows that Sumi does not support. */
export function oneOf(
  supported: readonly ConfigValue[],
  others: readonly ConfigValue[] = [],
): Rule {
  return (v) => {
    if (supported.some((s) => s === v)) return null;
    const list = supported.map(show).join(', ');
    if (others.some((s) => s === v)) return `${show(v)} is not supported (supported: ${list})`;
    return `expected one of ${list}, got ${show(v)}`;
  };
}

/** Only diffusers' default is supported. */
export function only(value: ConfigValue): Rule {
  return (v) => (v === value ? null : `only ${show(value)} is supported, got ${show(v)}`);
}

/** A non-empty list whose items all pass `item`. */
export function listOf(item: Rule, minLength = 1): Rule {
  return (v) => {
    if (!Array.isArray(v) || v.length < minLength) {
      return `expected a list of at least ${minLength} item(s), got ${show(v)}`;
    }
    for (let i = 0; i < v.length; i++) {
      const err = item(v[i]);
      if (err !== null) return `item ${i}: ${err}`;
    }
    return null;
  };
}

/** A single value or a list of them (diffusers' `int | tuple[int]` keys). */
export function oneOrList(item: Rule): Rule {
  const list = listOf(item);
  return (v) => (Array.isArray(v) ? list(v) : item(v));
}

export function either(...rules: Rule[]): Rule {
  return (v) => {
    const errs = rules.map((r) => r(v));
    return errs.some((e) => e === null) ? null : errs.join(', or ');
  };
}

// ---- helpers for models ------------------------------------------------------------------------

/** Expands diffusers' `x | tuple[x]` to one value per block. */
export function perBlock<T>(v: T | readonly T[], n: number): T[] {
  return Array.isArray(v) ? [...(v as readonly T[])] : Array.from({ length: n }, () => v as T);
}

/** Problems when a per-block list has the wrong length. */
export function checkLength(key: string, v: unknown, n: number, what: string): string[] {
  return Array.isArray(v) && v.length !== n
    ? [`${key}: has ${v.length} entries, expected one per ${what} (${n})`]
    : [];
}
