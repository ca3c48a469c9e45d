// The console against a server that requires an API key. Run by
// host/tests/e2e/console.rs; environment as in console.e2e.mjs, plus
// MOZAIKS_CONSOLE_KEY, the key to enter.
//
// Without the key the page says what is wrong; with it (entered in the
// settings dialog) every request and both sockets carry it: the workflows
// load, a chat starts, streams and takes a UI answer.

import { base, check, main, newPage, shot, tell } from './harness.mjs';

const key = process.env.MOZAIKS_CONSOLE_KEY;

async function run(browser) {
  check(Boolean(key), 'MOZAIKS_CONSOLE_KEY is not set');
  const page = await newPage(browser, 'auth', { viewport: { width: 1280, height: 800 } });
  await page.goto(base);
  // The page itself needs no key; the API does.
  await page.locator('#workflow-list .field-error').waitFor();
  check(await page.locator('#workflow-list [data-workflow]').count() === 0, 'workflows were listed without a key');
  await shot(page, 'auth-no-key');

  await page.getByRole('button', { name: 'API key' }).click();
  await page.getByLabel('Key', { exact: true }).fill(key);
  await shot(page, 'auth-settings');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#workflow-list [data-workflow="PlanReview"][data-valid="true"]').waitFor();
  await page.locator('#connection[data-state="open"]').waitFor();

  await page.selectOption('#workflow-select', 'PlanReview');
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.locator('#run-status[data-status="waiting_for_user"]').waitFor();
  await page.locator('#connection[data-state="open"]').waitFor();
  tell(`chat ${/#chat=([0-9a-f]{32})/.exec(page.url())[1]}`);
  const input = page.getByLabel('Message');
  await input.fill('Plan a party');
  await input.press('Enter');
  const card = page.locator('.ui-card[data-component="ApprovalForm"][data-state="open"]');
  await card.locator('form[data-generated="true"]').waitFor();
  await card.getByRole('radio', { name: 'Yes' }).check();
  await card.getByRole('button', { name: 'Send answer' }).click();
  await page.locator('#run-status[data-status="completed"]').waitFor();
  await page.locator('#context-panel tr[data-key="app_id"] .value', { hasText: '"acme"' }).waitFor();
  await shot(page, 'auth-chat-completed');
}

await main(run);
