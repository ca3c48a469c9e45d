// visual_agents in the console: the ChatUi test workflow lists Reviewer and
// user, so Scribe's message is a trace line and Reviewer's a chat bubble.
// Run by host/tests/e2e/console.rs with the test workflows and a model that
// has Scribe note and Reviewer answer.

import { base, check, main, newPage, shot } from './harness.mjs';

async function run(browser) {
  const page = await newPage(browser, 'visual', { viewport: { width: 1280, height: 800 } });
  await page.goto(base);
  await page.selectOption('#workflow-select', 'ChatUi');
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.locator('#run-status[data-status="waiting_for_user"]').waitFor();
  const input = page.getByLabel('Message');
  await input.fill('Plan the release');
  await input.press('Enter');
  await page.locator('.message-user', { hasText: 'Plan the release' }).waitFor();
  await page.locator('.line-trace[data-agent="Scribe"]', { hasText: 'Noted the release.' }).waitFor();
  await page.locator('.message-agent[data-agent="Reviewer"]', { hasText: 'Reviewed, looks fine.' }).waitFor();
  check(await page.locator('.message-agent[data-agent="Scribe"]').count() === 0, 'Scribe is shown as a chat bubble');
  await shot(page, 'visual-agents');
}

await main(run);
