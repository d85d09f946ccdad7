/**
 * Training configs from `--config <file>` or `--preset <name>` (the repository's presets/): a JSON
 * file (see diffusion/trainer/config.ts for what it holds), or a folder with `config.json` (or
 * `unet/config.json`), optionally `scheduler_config.json` (or `scheduler/scheduler_config.json`)
 * and `train.json`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import {
  type ConfigSource,
  parseConfigSource,
  type SettingsRules,
  TRAIN_SCHEMA,
  type TrainConfigSource,
} from '../diffusion/index.js';
import { CliError } from './args.js';
import { REPO_ROOT } from './common.js';

export const PRESETS_DIR = join(REPO_ROOT, 'presets');

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CliError(`${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

function firstExisting(paths: readonly string[]): string | undefined {
  return paths.find((p) => existsSync(p));
}

/** Checks a config's model config before its `train` section (see parseConfigSource). */
type CheckModel = (model: Record<string, unknown>) => void;

/**
 * Reads a config file or folder; its `train` section is checked against `rules`, those of the
 * trainer that reads it (without them, the diffusion trainer's), after `checkModel`.
 */
export function loadConfigSource(path: string): TrainConfigSource;
export function loadConfigSource<C>(
  path: string,
  rules: SettingsRules<C>,
  checkModel?: CheckModel,
): ConfigSource<C>;
export function loadConfigSource(
  path: string,
  rules: SettingsRules<object> = TRAIN_SCHEMA.rules,
  checkModel?: CheckModel,
): ConfigSource<object> {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new CliError(`config '${path}' does not exist`);
  }
  if (!st.isDirectory()) return parseConfigSource(readJson(path), path, rules, checkModel);
  const modelPath = firstExisting([join(path, 'config.json'), join(path, 'unet', 'config.json')]);
  if (modelPath === undefined) {
    throw new CliError(`${path}: a config folder needs config.json (or unet/config.json)`);
  }
  const schedPath = firstExisting([
    join(path, 'scheduler_config.json'),
    join(path, 'scheduler', 'scheduler_config.json'),
  ]);
  const trainPath = firstExisting([join(path, 'train.json')]);
  const textPath = firstExisting([join(path, 'text_encoder', 'config.json')]);
  return parseConfigSource(
    {
      model: readJson(modelPath),
      ...(schedPath !== undefined ? { scheduler: readJson(schedPath) } : {}),
      ...(textPath !== undefined ? { text_encoder: readJson(textPath) } : {}),
      ...(trainPath !== undefined ? { train: readJson(trainPath) } : {}),
    },
    path,
    rules,
    checkModel,
  );
}

/** Names of the presets in the repository. */
export function presetNames(): string[] {
  let names: string[];
  try {
    names = readdirSync(PRESETS_DIR);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith('.'))
    .filter((n) => n.endsWith('.json') || statSync(join(PRESETS_DIR, n)).isDirectory())
    .map((n) => n.replace(/\.json$/, ''))
    .filter((n, i, all) => all.indexOf(n) === i)
    .sort();
}

/** Reads presets/NAME (a file or a folder); `rules` as for loadConfigSource. */
export function loadPreset(name: string): TrainConfigSource;
export function loadPreset<C>(
  name: string,
  rules: SettingsRules<C>,
  checkModel?: CheckModel,
): ConfigSource<C>;
export function loadPreset(
  name: string,
  rules: SettingsRules<object> = TRAIN_SCHEMA.rules,
  checkModel?: CheckModel,
): ConfigSource<object> {
  const path = firstExisting([join(PRESETS_DIR, `${name}.json`), join(PRESETS_DIR, name)]);
  if (path === undefined) {
    const known = presetNames();
    throw new CliError(
      `unknown preset '${name}' (${known.length > 0 ? `available: ${known.join(', ')}` : `no presets in ${PRESETS_DIR}`}; or pass --config <file>)`,
    );
  }
  return loadConfigSource(path, rules, checkModel);
}
