/**
 * The playground built into a temporary folder, served by `vite preview` and opened in headless
 * Chromium through playwright-core: for the browser tests (test/web/) and the playground bench.
 * Chromium is Debian's package (`apt-get install -y chromium`; SUMI_CHROMIUM names another
 * binary); nothing is downloaded.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Browser, chromium, type Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';

import { type PlaygroundOptions, playgroundConfig } from './vite.config.js';

export const CHROMIUM = process.env.SUMI_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser checks cannot run here, or null when they can. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM)
    ? null
    : `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set SUMI_CHROMIUM)`;
}

export interface Playground {
  url: string;
  browser: Browser;
  /** Build time of the static site, in ms. */
  buildMs: number;
  /** A new page; every page error and console error is collected in `errors`. */
  open(query: string): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

/** The site built with `opts` (default: the repository's models), served and opened in Chromium. */
export async function startPlayground(opts: PlaygroundOptions = {}): Promise<Playground> {
  const outDir = mkdtempSync(join(tmpdir(), 'sumi-playground-'));
  const config = playgroundConfig(opts);
  const t0 = performance.now();
  await build({
    ...config,
    configFile: false,
    logLevel: 'error',
    build: { ...config.build, outDir, emptyOutDir: true },
  });
  const buildMs = performance.now() - t0;
  let server: PreviewServer | null = null;
  let browser: Browser | null = null;
  try {
    server = await preview({
      ...config,
      configFile: false,
      logLevel: 'error',
      build: { ...config.build, outDir },
      preview: { host: '127.0.0.1', port: 0, strictPort: false },
    });
    const url = server.resolvedUrls?.local[0];
    if (url === undefined) throw new Error('vite preview gave no address');
    // As root (CI containers) Chromium refuses to start without --no-sandbox; headless Chromium
    // on Linux offers WebGPU (SwiftShader's software adapter where there is no GPU) only with
    // --enable-unsafe-webgpu.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--enable-unsafe-webgpu'],
    });
    const b = browser;
    const s = server;
    return {
      url,
      browser: b,
      buildMs,
      async open(query) {
        const page = await b.newPage({ viewport: { width: 1100, height: 760 } });
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        page.on('console', (m) => {
          if (m.type() === 'error') errors.push(m.text());
        });
        // Up to 2 minutes: on a loaded 2-core machine the first navigation alone can take over
        // Playwright's default 30 s.
        await page.goto(`${url}?${query}`, { timeout: 120_000 });
        return { page, errors };
      },
      async close() {
        await b.close();
        await s.close();
        rmSync(outDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await browser?.close();
    await server?.close();
    rmSync(outDir, { recursive: true, force: true });
    throw e;
  }
}

/** Waits until the page's state (document.body.dataset.state) is one of `states`; returns it. */
export async function waitForState(
  page: Page,
  states: string[],
  timeout = 60_000,
): Promise<string> {
  const selector = states.map((s) => `body[data-state=${s}]`).join(', ');
  await page.waitForSelector(selector, { timeout, state: 'attached' });
  return pageState(page);
}

// What the page shows, read in the page (expressions as text: this file also compiles for Node).

export async function pageState(page: Page): Promise<string> {
  return page.evaluate<string>('document.body.dataset.state ?? ""');
}

/** The last step the page showed (0 before the first). */
export async function pageStep(page: Page): Promise<number> {
  return Number(await page.evaluate<string>('document.body.dataset.step ?? "0"'));
}

/** The worker's live tensors once it is idle again (after the load or sample under way). */
export async function idleTensors(page: Page, timeout = 60_000): Promise<number> {
  await page.waitForFunction('document.body.dataset.liveTensors !== undefined', null, { timeout });
  return Number(await page.evaluate<string>('document.body.dataset.liveTensors'));
}

/** The bytes of the PNG behind the page's download link. */
export async function downloadedPng(page: Page): Promise<Uint8Array> {
  const bytes = await page.evaluate<number[]>(
    `(async () => [...new Uint8Array(await (await fetch(document.getElementById('download').href)).arrayBuffer())])()`,
  );
  return Uint8Array.from(bytes);
}

/** The grid canvas: its size and the red channel of every pixel (gray grids). */
export async function canvasPixels(
  page: Page,
): Promise<{ width: number; height: number; red: number[] }> {
  return page.evaluate<{ width: number; height: number; red: number[] }>(`(() => {
    const c = document.getElementById('grid');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return { width: c.width, height: c.height, red: [...d.filter((_, i) => i % 4 === 0)] };
  })()`);
}
