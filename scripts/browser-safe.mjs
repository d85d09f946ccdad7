// Walks the import graph of a TypeScript entry point (static imports, re-exports, dynamic
// imports, require calls; type-only imports are skipped because they are erased) and reports every
// module that imports a Node built-in or a package outside the browser-safe list. A dynamic import
// of a computed specifier marked `/* @vite-ignore */` is left out of bundles by design (a package
// loaded at run time, in Node only): it is listed as a run-time import, not a finding.
// Usage: node scripts/browser-safe.mjs [entry.ts]   (default src/index.ts; exit 1 on a finding)
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** Packages that run unchanged in a browser (pure JavaScript over typed arrays). */
export const BROWSER_SAFE_PACKAGES = new Set(['fast-png', 'gifenc', 'jpeg-js']);

const NODE_BUILTINS = new Set(builtinModules);

/**
 * Every module specifier a file loads at run time: a string, null for a computed specifier, or
 * {runtime: text} for a computed one that bundlers are told to ignore.
 */
export function runtimeImports(file) {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const literal = (node) => (ts.isStringLiteralLike(node) ? node.text : null);
  const visit = (node) => {
    if (ts.isImportDeclaration(node)) {
      if (!node.importClause?.isTypeOnly) found.push(literal(node.moduleSpecifier));
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined) {
      if (!node.isTypeOnly) found.push(literal(node.moduleSpecifier));
    } else if (ts.isImportEqualsDeclaration(node)) {
      const ref = node.moduleReference;
      if (!node.isTypeOnly && ts.isExternalModuleReference(ref))
        found.push(literal(ref.expression));
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const isImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      if ((isImport || isRequire) && node.arguments.length > 0) {
        const arg = node.arguments[0];
        const spec = literal(arg);
        found.push(
          spec === null && isImport && bundlerIgnored(text, arg)
            ? { runtime: arg.getText() }
            : spec,
        );
      }
    }
    // `typeof import('x')` in a type position is erased: ImportTypeNode is not a call.
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** Whether a `/* @vite-ignore *\/` comment precedes the argument of a dynamic import. */
function bundlerIgnored(text, arg) {
  return text.slice(arg.pos, arg.getStart()).includes('@vite-ignore');
}

function resolveRelative(from, spec) {
  const base = resolve(dirname(from), spec);
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, resolve(base, 'index.ts')];
  const hit = candidates.find((c) => existsSync(c) && c.endsWith('.ts'));
  if (hit === undefined) throw new Error(`${from}: cannot resolve '${spec}'`);
  return hit;
}

function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/**
 * The modules reachable from `entry`, the findings: `{ file, spec, reason }` for each import of a
 * Node built-in, a package not in BROWSER_SAFE_PACKAGES, or a computed (non-literal) specifier,
 * and the run-time imports (`{ file, spec }`, computed and marked `@vite-ignore`).
 */
export function checkBrowserSafe(entry, root = process.cwd()) {
  const seen = new Set();
  const findings = [];
  const runtime = [];
  const stack = [resolve(root, entry)];
  while (stack.length > 0) {
    const file = stack.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const rel = relative(root, file);
    for (const spec of runtimeImports(file)) {
      if (spec !== null && typeof spec === 'object') {
        runtime.push({ file: rel, spec: spec.runtime });
      } else if (spec === null) {
        findings.push({ file: rel, spec: '(computed)', reason: 'computed import specifier' });
      } else if (spec.startsWith('.')) {
        stack.push(resolveRelative(file, spec));
      } else if (spec.startsWith('node:') || NODE_BUILTINS.has(packageName(spec))) {
        findings.push({ file: rel, spec, reason: 'Node built-in' });
      } else if (!BROWSER_SAFE_PACKAGES.has(packageName(spec))) {
        findings.push({ file: rel, spec, reason: 'package not known to be browser-safe' });
      }
    }
  }
  const modules = [...seen].map((f) => relative(root, f)).sort();
  return { modules, findings, runtime };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const entry = process.argv[2] ?? 'src/index.ts';
  const { modules, findings, runtime } = checkBrowserSafe(entry);
  for (const f of findings) console.error(`${f.file}: imports '${f.spec}' (${f.reason})`);
  for (const r of runtime)
    console.log(`${r.file}: run-time import(${r.spec}), left out of bundles`);
  console.log(`${entry}: ${modules.length} modules, ${findings.length} Node-only imports`);
  process.exit(findings.length === 0 ? 0 : 1);
}
