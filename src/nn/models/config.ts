/**
 * diffusers `config.json` at the boundary: a model's config is the plain object diffusers writes,
 * with its snake_case keys. Each model declares a schema (diffusers' default for every key and a
 * rule for the values Sumi supports); `resolveConfig` fills in the defaults and rejects unknown
 * keys and unsupported values in one error that names them all. Keys starting with `_`
 * (`_class_name`, `_diffusers_version`, `_name_or_path`) are metadata.
 */
import { ACTIVATIONS } from './common.js';

/** A value of a JSON config. */
export type ConfigValue =
  | null
  | boolean
  | number
  | string
  | readonly ConfigValue[]
  | { readonly [key: string]: ConfigValue };

/**
 * Checks one value: returns what is wrong with it, or null when it is fine. A rule made by
 * `expecting` also names the values it accepts (`expected`: "a number >= 0"), so that a reader of
 * another kind of config can word its messages its own way.
 */
export type Rule = ((value: unknown) => string | null) & { readonly expected?: string };

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

/** A value as a message shows it: JSON, but NaN, ±Infinity and undefined by name. */
export function showValue(v: unknown): string {
  if (v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return String(v);
  return JSON.stringify(v);
}

const show = showValue;

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

/** The rule of the values that pass `ok`, which it names `what`: "expected <what>, got <value>". */
export function expecting(what: string, ok: (v: unknown) => boolean): Rule {
  const rule = (v: unknown): string | null => (ok(v) ? null : `expected ${what}, got ${show(v)}`);
  return Object.assign(rule, { expected: what });
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export const bool: Rule = expecting('true or false', (v) => typeof v === 'boolean');

export const num: Rule = expecting('a number', isNumber);

export const positive: Rule = expecting('a positive number', (v) => isNumber(v) && v > 0);

export const nonNegative: Rule = expecting('a number >= 0', (v) => isNumber(v) && v >= 0);

/**
 * A number between `min` and `max`; `bounds` says which ends belong to the range, as the interval
 * is written ('[)': min <= v < max).
 */
export function between(min: number, max: number, bounds: '[]' | '[)' | '(]' | '()'): Rule {
  const [lo, hi] = bounds;
  return expecting(
    `a number in ${lo}${min}, ${max}${hi}`,
    (v) => isNumber(v) && (lo === '[' ? v >= min : v > min) && (hi === ']' ? v <= max : v < max),
  );
}

/** A probability in [0, 1). */
export const probability: Rule = between(0, 1, '[)');

export function int(min = 0): Rule {
  return expecting(
    `an integer >= ${min}`,
    (v) => typeof v === 'number' && Number.isInteger(v) && v >= min,
  );
}

/** A seed: an integer in [0, 2^53). */
export const seedInteger: Rule = expecting(
  'an integer in [0, 2^53)',
  (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0,
);

export const nonEmptyString: Rule = expecting(
  'a non-empty string',
  (v) => typeof v === 'string' && v !== '',
);

/** A JSON object (not null, not a list). */
export const jsonObject: Rule = expecting('an object', isPlainObject);

export function nullable(rule: Rule): Rule {
  const orNull = (v: unknown): string | null => (v === null ? null : rule(v));
  return rule.expected === undefined
    ? orNull
    : Object.assign(orNull, { expected: `${rule.expected} or null` });
}

/** One of the listed values. `others` are values diffusers knows that Sumi does not support. */
export function oneOf(
  supported: readonly ConfigValue[],
  others: readonly ConfigValue[] = [],
): Rule {
  const list = supported.map(show).join(', ');
  const rule = (v: unknown): string | null => {
    if (supported.some((s) => s === v)) return null;
    if (others.some((s) => s === v)) return `${show(v)} is not supported (supported: ${list})`;
    return `expected one of ${list}, got ${show(v)}`;
  };
  return Object.assign(rule, { expected: `one of ${list}` });
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
  const rule = (v: unknown): string | null => {
    const errs = rules.map((r) => r(v));
    return errs.some((e) => e === null) ? null : errs.join(', or ');
  };
  const named = rules.map((r) => r.expected);
  return named.every((e) => e !== undefined)
    ? Object.assign(rule, { expected: named.join(' or ') })
    : rule;
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

/** The problem when a block width is not a multiple of norm_num_groups (the first such width). */
export function checkGroupWidths(widths: readonly number[], groups: number): string[] {
  const bad = widths.find((ch) => ch % groups !== 0);
  return bad === undefined
    ? []
    : [`block_out_channels: ${bad} is not divisible by norm_num_groups=${groups}`];
}

/**
 * The problems of a config with one level per block_out_channels entry (UNet2DModel, the
 * autoencoders, the classifier): each of the per-level `lists` has one entry per level, and each
 * width is divisible by norm_num_groups.
 */
export function checkLevels<
  C extends { block_out_channels: readonly number[]; norm_num_groups: number },
>(c: C, lists: readonly (keyof C & string)[]): string[] {
  const n = c.block_out_channels.length;
  return [
    ...lists.flatMap((key) => checkLength(key, c[key], n, 'block_out_channels entry')),
    ...checkGroupWidths(c.block_out_channels, c.norm_num_groups),
  ];
}

/**
 * The rules of the config keys of diffusers' 2-D U-Nets (UNet2DModel, UNet2DConditionModel) and of
 * the models built from their parts (ControlNetModel, EncoderClassifierModel) that accept the same
 * values in every one of them that has the key; keys whose rules differ (layers_per_block,
 * attention_head_dim, ...) stay with each model.
 */
const UNET_RULES = {
  sample_size: nullable(either(int(1), listOf(int(1), 2))),
  in_channels: int(1),
  out_channels: int(1),
  center_input_sample: bool,
  flip_sin_to_cos: bool,
  freq_shift: num,
  time_embedding_dim: nullable(int(1)),
  num_class_embeds: nullable(int(1)),
  block_out_channels: listOf(int(1)),
  downsample_padding: int(0),
  downsample_type: oneOf(['conv', 'resnet']),
  mid_block_scale_factor: positive,
  add_attention: bool,
  attn_norm_num_groups: nullable(int(1)),
  dropout: probability,
  act_fn: oneOf(ACTIVATIONS),
  norm_num_groups: int(1),
  norm_eps: positive,
  only_cross_attention: oneOrList(bool),
  transformer_layers_per_block: oneOrList(int(1)),
  use_linear_projection: bool,
  // Only changes the precision of fp16 attention: nothing to do in float32 and float64.
  upcast_attention: nullable(bool),
  encoder_hid_dim: only(null),
  encoder_hid_dim_type: only(null),
  num_attention_heads: only(null),
  addition_embed_type: only(null),
  addition_time_embed_dim: only(null),
  projection_class_embeddings_input_dim: only(null),
  num_train_timesteps: anyValue,
} as const satisfies Record<string, Rule>;

type UNetRuleKey = keyof typeof UNET_RULES;

/**
 * The schema of a model of the U-Net family: the shared rules for the keys of `defaults` that
 * UNET_RULES has, then `rules` for the model's own keys.
 */
export function unetSchema<C extends object>(
  className: string,
  defaults: C,
  rules: { readonly [K in Exclude<keyof C, UNetRuleKey>]: Rule },
  check: (config: C) => string[],
): ConfigSchema<C> {
  const shared: Partial<Record<UNetRuleKey, Rule>> = {};
  for (const key of Object.keys(defaults)) {
    if (Object.hasOwn(UNET_RULES, key)) shared[key as UNetRuleKey] = UNET_RULES[key as UNetRuleKey];
  }
  return { className, defaults, rules: { ...shared, ...rules } as ConfigSchema<C>['rules'], check };
}
