// Fails (one line per file) when a tracked source file escapes the checks: neither type-checked
// (tsconfig.json, web/tsconfig.json) nor linted (eslint.config.js), or a test outside test/,
// where scripts/run-tests.mjs would never run it. Fixtures, docs and model files are data.
// Usage: node scripts/check-tracked.mjs   (part of npm run check)
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

import { ESLint } from 'eslint';
import ts from 'typescript';

const SOURCE = /\.[cm]?[jt]sx?$/;
/** Folders whose files are data, whatever their names end in. */
const DATA = ['test/fixtures/', 'docs/', 'models/', 'presets/'];
const TSCONFIGS = ['tsconfig.json', 'web/tsconfig.json'];

/** The files a tsconfig names (its include minus its exclude), relative to the repository. */
function typeChecked(configPath) {
  const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile);
  if (error)
    throw new Error(`${configPath}: ${ts.flattenDiagnosticMessageText(error.messageText, '\n')}`);
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, dirname(resolve(configPath)));
  return parsed.fileNames.map((f) => relative(process.cwd(), f).split('\\').join('/'));
}

const tracked = execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' })
  .split('\0')
  .filter((f) => SOURCE.test(f) && existsSync(f) && !DATA.some((d) => f.startsWith(d)));
const checked = new Set(TSCONFIGS.flatMap(typeChecked));
const eslint = new ESLint();

const problems = [];
for (const f of tracked) {
  if (/\.test\.[cm]?[jt]sx?$/.test(f) && !f.startsWith('test/')) {
    problems.push(`${f}: a test outside test/ (run-tests.mjs looks in test/ only)`);
  }
  if (!checked.has(f) && (await eslint.isPathIgnored(f))) {
    problems.push(`${f}: neither type-checked (${TSCONFIGS.join(', ')}) nor linted`);
  }
}
for (const p of problems) console.error(p);
if (problems.length > 0) process.exit(1);
console.log(`check-tracked: ${tracked.length} tracked source files, each checked`);
