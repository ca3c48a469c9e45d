// The developer console in headless Chromium, end to end. Run by
// host/tests/e2e/console.rs, which starts the fake LLM and the real server
// with the demo workflow (PlanReview) and answers this script's requests:
//
//   stdout  "@@ chat <id>"           the PlanReview chat the script made (no answer)
//   stdout  "@@ artifact-chat <id>"  the ConsoleArtifact chat (no answer)
//   stdout  "@@ replace-plugin"      replace plugins/planner's component on disk
//   stdout  "@@ kill-server"         kill the server (SIGKILL)
//   stdout  "@@ start-server"        start it again on the same address
//   stdin   "ok"                     the request is done
//
// Environment: MOZAIKS_CONSOLE_URL (the server), MOZAIKS_CONSOLE_ARTIFACTS
// (where the screenshots go), MOZAIKS_CHROMIUM (default /usr/bin/chromium).
// Every wait is for a condition on the page, with a generous limit
// (harness.mjs).

import { base, check, main, newPage, request, shot, tell, text } from './harness.mjs';

async function run(browser) {
  const desktop = await newPage(browser, 'desktop', { viewport: { width: 1280, height: 800 } });

  // 1. The console lists the demo workflow as valid, a broken one with its
  //    problems (and not among those a chat can start with).
  await desktop.goto(base);
  await desktop.locator('#workflow-list [data-workflow="PlanReview"][data-valid="true"]').waitFor();
  await desktop.locator('#workflow-list [data-workflow="unknown_agent_in_handoff"][data-valid="false"] .workflow-errors', { hasText: 'unknown agent "Reviwer"' }).waitFor();
  check(await desktop.locator('#workflow-select option[value="unknown_agent_in_handoff"]').count() === 0, 'an invalid workflow is offered for a new chat');
  await desktop.locator('#connection[data-state="open"]').waitFor();
  await shot(desktop, 'console');

  // 2. Start a chat: it waits for the user, the context panel shows the
  //    initial variables.
  await desktop.selectOption('#workflow-select', 'PlanReview');
  await desktop.getByRole('button', { name: 'New chat' }).click();
  await desktop.locator('#run-status[data-status="waiting_for_user"]').waitFor();
  await desktop.locator('#context-panel tr[data-key="workflow_name"]').waitFor();
  check((await text(desktop.locator('#context-panel tr[data-key="workflow_name"] .value'))) === '"PlanReview"', 'workflow_name is not PlanReview in the context panel');
  check((await text(desktop.locator('#context-panel tr[data-key="approved"] .value'))) === 'null', 'approved does not start as null');
  const chatId = /#chat=([0-9a-f]{32})/.exec(desktop.url())[1];
  tell(`chat ${chatId}`);
  await shot(desktop, 'chat-started');

  // 3. Send a message: the Planner's tools run, its reply streams in.
  const input = desktop.getByLabel('Message');
  await input.fill('Plan a party');
  await input.press('Enter');
  await desktop.locator('.message.draft[data-agent="Planner"]').waitFor();
  await shot(desktop, 'streaming');
  await desktop.locator('.message-agent[data-agent="Planner"]:not(.draft)', { hasText: 'The plan is ready for review.' }).waitFor();
  check(await desktop.locator('.message-user', { hasText: 'Plan a party' }).count() === 1, 'the user message is not shown once');
  check(await desktop.locator('.tool[data-tool="add_task"][data-state="ok"]').count() === 2, 'the two add_task calls are not shown as ok');
  await desktop.locator('.line-handoff', { hasText: 'Reviewer' }).first().waitFor();

  // 4. The Reviewer's UI tool renders as a form generated from the
  //    workflow's ApprovalForm schema; the context shows the plan.
  const card = desktop.locator('.ui-card[data-component="ApprovalForm"][data-state="open"]');
  await card.locator('form[data-generated="true"]').waitFor();
  check((await card.locator('.ui-headline').textContent()) === 'Approve this plan?', 'the request payload question is not shown');
  check(await card.locator('.props-table tbody tr').count() === 2, 'the two tasks of the payload are not shown');
  await desktop.locator('#context-panel tr[data-key="plan_ready"] .value', { hasText: 'true' }).waitFor();
  await desktop.locator('.tool[data-tool="add_task"] summary').first().click();
  await desktop.locator('.tool[data-tool="add_task"][open] .tool-body', { hasText: 'Book venue' }).waitFor();
  await shot(desktop, 'ui-request-form');

  // 5. The generated form validates, then answers: the request closes and
  //    the context panel shows the tool's change.
  await card.getByRole('button', { name: 'Send answer' }).click();
  await card.locator('.field-error', { hasText: 'Choose one.' }).waitFor();
  await card.getByRole('radio', { name: 'No' }).check();
  await card.getByLabel('Comment').fill('Add a budget line');
  await card.getByRole('button', { name: 'Send answer' }).click();
  await desktop.locator('.ui-card[data-component="ApprovalForm"][data-state="answered"]').waitFor();
  const approved = desktop.locator('#context-panel tr[data-key="approved"][data-by="tool:request_approval"]');
  await approved.waitFor();
  check((await text(approved.locator('.value'))) === 'false', 'the context panel does not show approved = false');
  await desktop.locator('.message-structured[data-agent="Reviewer"]', { hasText: 'Please add a budget.' }).waitFor();
  await desktop.locator('#run-status[data-status="waiting_for_user"]').waitFor();
  await shot(desktop, 'answered-context-changed');

  // 6. A new planner component on disk: the reload shows as a toast and in
  //    the plugins panel.
  await request('replace-plugin');
  await desktop.locator('.toast', { hasText: 'Plugin planner reloaded' }).waitFor();
  await desktop.locator('#plugin-list [data-plugin="planner"] .plugin-reload', { hasText: 'loaded' }).waitFor();
  await shot(desktop, 'plugin-reload-toast');

  // 7. The server dies and comes back on the same address: the page
  //    notices, reconnects by itself and picks the chat up where it was.
  await request('kill-server');
  await desktop.locator('#connection[data-state="retrying"]').waitFor();
  await shot(desktop, 'server-down');
  await request('start-server');
  await desktop.locator('#connection[data-state="open"]').waitFor();
  await desktop.locator('#run-status[data-status="waiting_for_user"]').waitFor();
  await shot(desktop, 'reconnected');

  // 8. The chat goes on: a new message, a second request answered Yes,
  //    and the run completes. Nothing seen before the restart is doubled.
  await input.fill('Add a budget task');
  await input.press('Enter');
  const second = desktop.locator('.ui-card[data-component="ApprovalForm"][data-state="open"]');
  await second.locator('form[data-generated="true"]').waitFor();
  check(await second.locator('.props-table tbody tr').count() === 3, 'the second request does not list three tasks');
  await second.getByRole('radio', { name: 'Yes' }).check();
  await second.getByRole('button', { name: 'Send answer' }).click();
  await desktop.locator('#run-status[data-status="completed"]').waitFor();
  await desktop.locator('#context-panel tr[data-key="approved"] .value', { hasText: 'true' }).waitFor();
  check(await desktop.locator('.message-user').count() === 2, 'user messages were doubled or lost across the restart');
  check(await desktop.locator('.tool[data-tool="add_task"]').count() === 3, 'tool calls were doubled or lost across the restart');
  check(await desktop.locator('.ui-card[data-component="ApprovalForm"]').count() === 2, 'UI requests were doubled or lost across the restart');
  await desktop.locator('.message-structured[data-agent="Reviewer"]', { hasText: 'Approved, go ahead.' }).waitFor();
  await shot(desktop, 'chat-completed');

  // 9. The same chat on a phone: one column, drawers for the panels, no
  //    sideways scrolling.
  // Reduced motion: the drawers open at once, so the screenshots show them open.
  const phone = await newPage(browser, 'phone', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, reducedMotion: 'reduce' });
  await phone.goto(`${base}/#chat=${chatId}`);
  await phone.locator('#run-status[data-status="completed"]').waitFor();
  await phone.locator('.message-structured[data-agent="Reviewer"]', { hasText: 'Approved, go ahead.' }).waitFor();
  const width = await phone.evaluate(() => ({ page: document.documentElement.scrollWidth, window: window.innerWidth }));
  check(width.page <= 390 && width.window === 390, `the phone layout is ${width.page} px wide in a ${width.window} px window`);
  await shot(phone, 'phone-chat');
  await phone.getByRole('button', { name: 'Context, plugins and artifacts' }).click();
  await phone.locator('#inspector.open #context-panel tr[data-key="approved"]').waitFor();
  const drawer = await phone.locator('#inspector').boundingBox();
  check(drawer.x >= 0 && drawer.x + drawer.width <= 390, `the inspector drawer is not inside the screen: ${JSON.stringify(drawer)}`);
  await shot(phone, 'phone-inspector');
  await phone.keyboard.press('Escape');
  await phone.getByRole('button', { name: 'Workflows and chats' }).click();
  await phone.locator(`#nav.open .chat-item[data-chat="${chatId}"]`).waitFor();
  await shot(phone, 'phone-chats');

  // 10. A workflow with its own component, in the artifact panel: the first
  //     request expires unanswered, the component answers the second.
  await desktop.selectOption('#workflow-select', 'ConsoleArtifact');
  await desktop.getByRole('button', { name: 'New chat' }).click();
  const artifactChat = await desktop.waitForFunction((previous) => {
    const match = /#chat=([0-9a-f]{32})/.exec(window.location.hash);
    return match && match[1] !== previous && match[1];
  }, chatId);
  tell(`artifact-chat ${await artifactChat.jsonValue()}`);
  const panel = desktop.locator('#artifact-panel');
  await panel.locator('.ui-card[data-component="Confirm"][data-state="expired"]', { hasText: 'Ship it now?' }).waitFor();
  await desktop.locator('.ui-pointer', { hasText: 'Confirm is in the artifact panel' }).first().waitFor();
  await shot(desktop, 'artifact-expired');
  const custom = panel.locator('.ui-card[data-component="Confirm"][data-state="open"]');
  await custom.locator('.confirm-question', { hasText: 'Ship it after all?' }).waitFor();
  check(await custom.locator('form[data-generated]').count() === 0, 'a form was generated although the workflow ships Confirm.js');
  await shot(desktop, 'artifact-component');
  await custom.getByRole('button', { name: 'Confirm' }).click();
  await panel.locator('.ui-card[data-component="Confirm"][data-state="answered"]').waitFor();
  await desktop.locator('#run-status[data-status="completed"]').waitFor();
  await desktop.locator('.message-agent[data-agent="Asker"]', { hasText: 'Shipped.' }).waitFor();
  await shot(desktop, 'artifact-answered');

  // 11. Reloaded, the page rebuilds the chat from its history: both
  //     requests are back in the artifact panel, closed as they ended.
  await desktop.reload();
  await desktop.locator('#run-status[data-status="completed"]').waitFor();
  await panel.locator('.ui-card[data-state="expired"]', { hasText: 'Ship it now?' }).waitFor();
  await panel.locator('.ui-card[data-state="answered"]', { hasText: 'Ship it after all?' }).waitFor();
  check(await panel.locator('.ui-card').count() === 2, 'the artifact panel does not hold exactly the two requests');
  check(await panel.locator('.ui-card[data-state="open"]').count() === 0, 'a closed request shows as open after a reload');
  await shot(desktop, 'artifact-replayed');
}

await main(run);
