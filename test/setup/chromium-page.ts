// Debian's Chromium (never a downloaded browser) on one page of a server of ours, driven by
// playwright-core, keeping what a dashboard test asserts on: page errors, requests to any other
// origin, the paths it fetched. Waits poll the page for a DOM condition, never a fixed time.
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

export interface WatchedPage {
  readonly browser: Browser;
  readonly page: Page;
  readonly pageErrors: string[];
  readonly foreignRequests: string[];
  readonly requestedPaths: Set<string>;
  /**
   * Polls `condition` in the page. Not page.waitForFunction: with a string it evaluates through
   * eval inside the page, which the dashboard's CSP (rightly) forbids.
   */
  waitInPage(condition: string, timeoutMs?: number): Promise<void>;
}

export async function openWatchedPage(origin: string, waitMs: number): Promise<WatchedPage> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the dashboard end-to-end tests need Debian's chromium package (apt-get install -y chromium; .ci/run installs it)`);
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const watched: WatchedPage = {
    browser,
    page,
    pageErrors: [],
    foreignRequests: [],
    requestedPaths: new Set(),
    async waitInPage(condition, timeoutMs = waitMs) {
      const deadline = Date.now() + timeoutMs;
      while (!(await page.evaluate(condition))) {
        if (Date.now() > deadline) throw new Error(`the page never met: ${condition}`);
        await delay(100);
      }
    },
  };
  page.on('pageerror', (error) => watched.pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') watched.pageErrors.push(message.text());
  });
  page.on('request', (request) => {
    const url = request.url();
    if (url.startsWith(origin)) watched.requestedPaths.add(new URL(url).pathname);
    if (!url.startsWith(origin) && !url.startsWith(origin.replace(/^http/, 'ws')) && !url.startsWith('data:')) watched.foreignRequests.push(url);
  });
  await page.goto(`${origin}/`);
  return watched;
}
