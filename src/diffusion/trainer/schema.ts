/**
 * The settings of every trainer (diffusion, autoencoder, classifier) are checked one way: each
 * kind declares a schema, its defaults and a rule per key from the rule vocabulary of the model
 * configs (nn/models/config.ts), plus checks across keys; one function reports every unknown key
 * and bad value in a single TrainConfigError, each as "'key' must be <what>, got <value>".
 */
import { type Rule, showValue } from '../../nn/models/config.js';

export class TrainConfigError extends Error {
  override name = 'TrainConfigError';
}

/** A rule for every key of C. */
export type SettingsRules<C> = { readonly [K in keyof C]-?: Rule };

export interface SettingsSchema<C> {
  /** The default of every key that has one (the others come from the data or the run). */
  readonly defaults: Partial<C>;
  /** What each key accepts. */
  readonly rules: SettingsRules<C>;
  /** Checks across keys, made once every key passes its rule; each returns problems. */
  readonly check?: (config: C) => string[];
}

/**
 * What is wrong with `values` under `rules`, one line each (none: an empty list): every unknown key
 * and every value its rule refuses. Undefined values are absent ones.
 */
export function settingsProblems(
  rules: Readonly<Record<string, Rule>>,
  values: Readonly<Record<string, unknown>>,
): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const rule = Object.hasOwn(rules, key) ? rules[key] : undefined;
    if (rule === undefined) {
      problems.push(`unknown key '${key}'`);
      continue;
    }
    const problem = rule(value);
    if (problem === null) continue;
    problems.push(
      rule.expected !== undefined
        ? `'${key}' must be ${rule.expected}, got ${showValue(value)}`
        : `'${key}': ${problem}`,
    );
  }
  return problems;
}

function fail(problems: readonly string[], source: string | undefined): never {
  const list = problems.join('; ');
  throw new TrainConfigError(source === undefined ? list : `${source}: ${list}`);
}

/**
 * Checks values given for some of the keys (a config file's `train` section, a CLI option):
 * every unknown key and bad value in one TrainConfigError, after `source` when given.
 */
export function checkValues<C>(
  rules: SettingsRules<C>,
  values: Readonly<Record<string, unknown>>,
  source?: string,
): Partial<C> {
  const problems = settingsProblems(rules, values);
  if (problems.length > 0) fail(problems, source);
  return values as Partial<C>;
}

/**
 * Checks a complete config: every key under its rule, then (when they all pass) the schema's
 * checks across keys; every problem in one TrainConfigError.
 */
export function checkSettings<C extends object>(
  schema: SettingsSchema<C>,
  config: C,
  source?: string,
): C {
  const problems = settingsProblems(schema.rules, config as Record<string, unknown>);
  if (problems.length === 0 && schema.check) problems.push(...schema.check(config));
  if (problems.length > 0) fail(problems, source);
  return config;
}
