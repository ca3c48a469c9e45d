// What the console's browser scripts share: the environment the Rust test
// sets, the request/answer lines it reads, screenshots, and a page watcher
// that fails the run on uncaught errors. See console.e2e.mjs for the
// protocol with host/tests/e2e/console.rs.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const base = process.env.MOZAIKS_CONSOLE_URL;
export const artifacts = process.env.MOZAIKS_CONSOLE_ARTIFACTS || 'console-artifacts';
const executablePath = process.env.MOZAIKS_CHROMIUM || '/usr/bin/chromium';
/** The longest wait for one condition: for slow CI machines, never a pass condition. */
export const WAIT_MS = 30000;

const stdin = createInterface({ input: process.stdin });
const answers = stdin[Symbol.asyncIterator]();
const problems = [];
let step = 0;

/** Tells the Rust side something that needs no answer. */
export function tell(what) {
  process.stdout.write(`@@ ${what}\n`);
}

/** Asks the Rust side to do something and waits until it is done. */
export async function request(what) {
  tell(what);
  const { value, done } = await answers.next();
  if (done || value.trim() !== 'ok') throw new Error(`${what}: the test answered ${done ? 'nothing' : value}`);
}

/** Saves a numbered screenshot of the page. */
export async function shot(page, name) {
  step += 1;
  const file = join(artifacts, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  console.log(`screenshot ${file}`);
}

/** A new page that records uncaught errors and unexpected console errors. */
export async function newPage(browser, label, options) {
  const page = await browser.newPage(options);
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => problems.push(`${label}: uncaught ${err.message}`));
  page.on('console', (message) => {
    // Failed socket attempts and refused requests are part of the scenarios.
    if (message.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(message.text())) {
      problems.push(`${label}: console error ${message.text()}`);
    }
  });
  return page;
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export const text = async (locator) => (await locator.textContent()).trim();

/** Runs `scenario(browser)` and exits 0 when it passed with no page problems. */
export async function main(scenario) {
  if (!base) {
    console.error('MOZAIKS_CONSOLE_URL is not set: host/tests/e2e/console.rs runs this script');
    process.exit(2);
  }
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  let failed = false;
  try {
    await scenario(browser);
  } catch (err) {
    failed = true;
    console.error(`browser test failed: ${err.stack || err.message}`);
    for (const [i, page] of browser.contexts().flatMap((c) => c.pages()).entries()) {
      const file = join(artifacts, `failure-${i}.png`);
      await page.screenshot({ path: file }).catch(() => {});
      console.error(`failure screenshot ${file}`);
      // What the page showed, for the test log.
      const state = await page.evaluate(() => ({
        url: window.location.href,
        connection: document.getElementById('connection')?.dataset.state,
        status: document.getElementById('run-status')?.dataset.status,
        transcript: document.getElementById('transcript')?.innerText.slice(-3000),
      })).catch((e) => ({ error: e.message }));
      console.error(`page ${i}: ${JSON.stringify(state, null, 2)}`);
    }
  } finally {
    await browser.close();
  }
  if (problems.length) {
    failed = true;
    console.error(`problems on the page:\n  ${problems.join('\n  ')}`);
  }
  stdin.close();
  process.exit(failed ? 1 : 0);
}
