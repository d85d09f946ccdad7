/**
 * What the CLI tests share: `main(args)` in this process with its output captured, the check of
 * a clean error, and a scratch folder with a tiny model config that `sumi train` trains in
 * seconds.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

import { main } from '../../src/cli/main.js';
import { encodePng } from '../../src/data/index.js';
import { TINY_UNET } from '../diffusion/train-setup.js';

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** main(args) in this process, with console output captured. */
export async function sumiInProcess(args: string[]): Promise<Result> {
  const { log, error } = console;
  let stdout = '';
  let stderr = '';
  console.log = (...a: unknown[]) => void (stdout += `${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void (stderr += `${a.join(' ')}\n`);
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    console.log = log;
    console.error = error;
  }
}

export const STACK = /\n\s+at /;

/** One line naming the problem, the exit code, and no stack trace. */
export function assertCleanError(r: Result, code: number, message: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, STACK, 'no stack trace without --verbose');
}

/** An input error: exit 2, one line naming the problem, no stack trace, and `out` not written. */
export function assertInputError(r: Result, message: RegExp, out: string): void {
  assertCleanError(r, 2, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.equal(existsSync(out), false, `${out} is not written`);
}

/** An 8×8 UNet2DModel (TINY_UNET) with 100 training timesteps: a `sumi train --config`. */
export const TINY_CONFIG = {
  model: { _class_name: 'UNet2DModel', sample_size: 8, ...TINY_UNET },
  scheduler: { num_train_timesteps: 100 },
};

export interface CliFixture {
  /** A path in the scratch folder. */
  file: (name: string) => string;
  /** TINY_CONFIG, written to tiny.json in the scratch folder. */
  config: string;
}

/**
 * A scratch folder named from `prefix`, holding tiny.json, made when called (not in a `before`
 * hook: Node runs a file's top-level `before` hooks without waiting for one another, so a later
 * hook could see the paths unset); an `after` hook removes it.
 */
export function cliFixture(prefix: string): CliFixture {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const file = (name: string): string => join(dir, name);
  const fx: CliFixture = { file, config: file('tiny.json') };
  writeFileSync(fx.config, JSON.stringify(TINY_CONFIG));
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return fx;
}

/**
 * `sumi train` of tiny.json on MNIST for 2 steps of batch 4 into `out`, quietly, with no
 * checkpoints or samples on the way; `options` come before --out.
 */
export function trainTiny(fx: CliFixture, out: string, options: string[]): Promise<Result> {
  return sumiInProcess([
    'train',
    '--data',
    'mnist',
    '--config',
    fx.config,
    ...options,
    '--steps',
    '2',
    '--batch',
    '4',
    '--save-every',
    '0',
    '--sample-every',
    '0',
    '--quiet',
    '--out',
    out,
  ]);
}

/** Writes a size×size 8-bit gray PNG to `path`: `data`, or the pattern (i·53) mod 256. */
export async function grayPng(path: string, size: number, data?: Uint8Array): Promise<string> {
  const pixels = data ?? Uint8Array.from({ length: size * size }, (_, i) => (i * 53) % 256);
  await writeFile(path, encodePng({ width: size, height: size, channels: 1, data: pixels }));
  return path;
}
