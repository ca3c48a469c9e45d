// An LLM error in the console: the error shows in the transcript, the run
// is interrupted, Continue retries it and the structured reply arrives.
// Run by host/tests/e2e/console.rs with the test workflows (Structured)
// and a model that fails until the test lets it answer.

import { base, check, main, newPage, shot } from './harness.mjs';

async function run(browser) {
  const page = await newPage(browser, 'errors', { viewport: { width: 1280, height: 800 } });
  await page.goto(base);
  await page.selectOption('#workflow-select', 'Structured');
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.locator('#run-status[data-status="interrupted"]').waitFor();
  await page.locator('.line-error', { hasText: 'LLM_HTTP_ERROR' }).waitFor();
  await page.locator('.line-status', { hasText: 'send `continue` to retry' }).waitFor();
  check(await page.getByRole('button', { name: 'Continue' }).isVisible(), 'no Continue button on an interrupted run');
  await shot(page, 'interrupted');
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('#run-status[data-status="completed"]').waitFor();
  await page.locator('.message-structured[data-agent="Judge"]', { hasText: 'after continue' }).waitFor();
  check(!(await page.getByRole('button', { name: 'Continue' }).isVisible()), 'the Continue button stays after the run went on');
  await page.locator('#context-panel tr[data-key="score"] .value', { hasText: '4' }).waitFor();
  await shot(page, 'continued');
}

await main(run);
