// Types of scripts/browser-safe.mjs for the tests that import it.
export const BROWSER_SAFE_PACKAGES: Set<string>;

export interface BrowserSafeFinding {
  file: string;
  spec: string;
  reason: string;
}

export interface RuntimeImport {
  file: string;
  spec: string;
}

export function runtimeImports(file: string): (string | null | { runtime: string })[];

export function checkBrowserSafe(
  entry: string,
  root?: string,
): { modules: string[]; findings: BrowserSafeFinding[]; runtime: RuntimeImport[] };
