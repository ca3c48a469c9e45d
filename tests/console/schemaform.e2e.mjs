// The form generated from a JSON Schema (host/console/schemaform.js), on
// its own, in the console's page: every kind of field it offers, its
// checks, and the value it reads back. Run by host/tests/e2e/console.rs.

import { base, check, main, newPage, shot } from './harness.mjs';

const schema = {
  type: 'object',
  required: ['name', 'count', 'size', 'tags', 'address'],
  properties: {
    name: { type: 'string', title: 'Name', minLength: 2, maxLength: 40 },
    count: { type: 'integer', minimum: 1, maximum: 10 },
    ratio: { type: 'number' },
    size: { enum: ['s', 'm', 'l', 'xl', 'xxl', 'xxxl'] },
    color: { enum: ['red', 'green'], default: 'red' },
    tags: { type: 'array', items: { enum: ['alpha', 'beta', 'gamma'] }, minItems: 1 },
    notes: { type: 'array', items: { type: 'string' } },
    address: { type: 'object', properties: { city: { type: 'string', maxLength: 40 } }, required: ['city'] },
    steps: { type: 'array', items: { type: 'object', properties: { title: { type: 'string', maxLength: 50 } }, required: ['title'] } },
    kind: { const: 'demo' },
    extra: { description: 'Anything.' },
  },
};

async function run(browser) {
  const page = await newPage(browser, 'form', { viewport: { width: 1280, height: 800 } });
  await page.goto(base);
  await page.evaluate(async (s) => {
    const { schemaForm } = await import('/console/schemaform.js');
    const form = schemaForm(s);
    const host = document.createElement('form');
    host.id = 'form-test';
    host.style.cssText = 'position:fixed;inset:60px 20% 20px;overflow:auto;background:#fff;padding:16px;z-index:99;border:1px solid #ccc';
    host.append(form.element);
    document.body.append(host);
    window.formUnderTest = form;
  }, schema);
  const form = page.locator('#form-test');
  const read = () => page.evaluate(() => window.formUnderTest.read());

  // Empty: refused, with a message at each required field.
  check((await read()).ok === false, 'an empty form was accepted');
  for (const message of ['Required.', 'Choose one.', 'At least 1.']) {
    await form.locator('.field-error', { hasText: message }).first().waitFor();
  }
  check(await form.locator('[aria-invalid="true"]').count() >= 4, 'the invalid fields are not marked aria-invalid');
  await shot(page, 'form-errors');

  // Out of range: refused with the limit.
  await form.getByRole('textbox', { name: 'Name', exact: true }).fill('A');
  await form.getByRole('spinbutton', { name: 'Count', exact: true }).fill('11');
  check((await read()).ok === false, 'a too short name and a too large count were accepted');
  await form.locator('.field-error', { hasText: 'At least 2 characters.' }).waitFor();
  await form.locator('.field-error', { hasText: 'At most 10.' }).waitFor();

  // Filled in: the value has the schema's types.
  await form.getByRole('textbox', { name: 'Name', exact: true }).fill('Ada');
  await form.getByRole('spinbutton', { name: 'Count', exact: true }).fill('3');
  await form.getByRole('spinbutton', { name: 'Ratio', exact: true }).fill('0.5');
  await form.getByRole('combobox', { name: 'Size', exact: true }).selectOption({ label: 'xl' });
  await form.getByRole('radio', { name: 'green', exact: true }).check();
  await form.getByRole('checkbox', { name: 'beta', exact: true }).check();
  await form.getByRole('textbox', { name: 'Notes', exact: true }).fill('first\n\nsecond ');
  await form.getByRole('textbox', { name: 'City', exact: true }).fill('Oslo');
  await form.getByRole('button', { name: 'Add item' }).click();
  await form.getByRole('textbox', { name: 'Title', exact: true }).fill('Book venue');
  await form.getByRole('textbox', { name: 'Extra', exact: true }).fill('{"k": [1, 2]}');
  const result = await read();
  await shot(page, 'form-filled');
  const expected = {
    name: 'Ada', count: 3, ratio: 0.5, size: 'xl', color: 'green', tags: ['beta'],
    notes: ['first', 'second'], address: { city: 'Oslo' }, steps: [{ title: 'Book venue' }],
    kind: 'demo', extra: { k: [1, 2] },
  };
  check(result.ok, `the filled form was refused: ${JSON.stringify(result)}`);
  check(JSON.stringify(result.value) === JSON.stringify(expected), `read ${JSON.stringify(result.value)}, expected ${JSON.stringify(expected)}`);
  check(await form.locator('.field-error:not([hidden])').count() === 0, 'errors are still shown after fixing them');
}

await main(run);
