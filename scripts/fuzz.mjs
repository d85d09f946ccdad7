// The nightly-style fuzz run: every property of the *-fuzz.test.ts files with 10,000 cases (CI runs
// 500), one file at a time, then the cases and seconds per parser.
// Usage: node scripts/fuzz.mjs [cases per property] [file substring ...]
//   SUMI_FUZZ_SEED=<n> replays a seed that a failure printed.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('-fuzz.test.ts')) out.push(p);
  }
  return out;
}

const [first, ...rest] = process.argv.slice(2);
const runs = first !== undefined && /^\d+$/.test(first) ? Number(first) : 10000;
const filters = first !== undefined && !/^\d+$/.test(first) ? [first, ...rest] : rest;
const files = walk('test', [])
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('fuzz: no fuzz test files matched');
  process.exit(1);
}

const perParser = new Map(); // parser -> { cases, seconds }
let failed = false;
const start = performance.now();
for (const file of files) {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', file],
    {
      env: { ...process.env, SUMI_FUZZ_RUNS: String(runs), SUMI_CPU_THREADS: '1' },
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
    },
  );
  const output = `${r.stdout}${r.stderr}`;
  for (const m of output.matchAll(/fuzz ([\w-]+): (.*): (\d+) cases in ([\d.]+) s/g)) {
    const entry = perParser.get(m[1]) ?? { cases: 0, seconds: 0, properties: 0 };
    entry.cases += Number(m[3]);
    entry.seconds += Number(m[4]);
    entry.properties += 1;
    perParser.set(m[1], entry);
    console.log(`${m[1]}: ${m[2]}: ${m[3]} cases in ${m[4]} s`);
  }
  if (r.status !== 0) {
    failed = true;
    console.error(`\n${file} failed:\n${output}`);
  }
}

console.log('\nparser        properties      cases   seconds');
for (const [parser, e] of perParser) {
  console.log(
    `${parser.padEnd(14)}${String(e.properties).padStart(10)}${String(e.cases).padStart(11)}` +
      `${e.seconds.toFixed(1).padStart(10)}`,
  );
}
console.log(`total ${((performance.now() - start) / 1000).toFixed(0)} s (${files.length} files)`);
process.exit(failed ? 1 : 0);
