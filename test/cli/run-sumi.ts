/** What the CLI tests share: `main(args)` in this process with its output captured, and the check of a clean error. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import { main } from '../../src/cli/main.js';

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
