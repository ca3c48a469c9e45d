// A form generated from a JSON Schema: the fallback UI of a UI tool whose
// workflow ships no component of its own. Covers what answers need:
// objects (nested), strings (enum, formats, long text), numbers, integers,
// booleans (an explicit Yes/No), arrays (of choices, of plain values one
// per line, of objects), const, defaults, required, and the usual limits.
// Anything else is edited as JSON text.

import { h, humanize } from './dom.js';

let nextId = 0;
const uid = (prefix) => `${prefix}-${(nextId += 1)}`;

/** Choices shown as radio buttons up to this many; a select beyond. */
const MAX_RADIO_CHOICES = 5;
/** Strings allowed longer than this get a text area. */
const LONG_TEXT = 120;

function kindOf(schema) {
  if (!schema || typeof schema !== 'object') return 'json';
  if (schema.const !== undefined) return 'const';
  if (Array.isArray(schema.enum)) return 'enum';
  let type = schema.type;
  if (Array.isArray(type)) type = type.length === 2 && type.includes('null') ? type.find((t) => t !== 'null') : undefined;
  if (!type && schema.properties) type = 'object';
  return ['object', 'array', 'string', 'number', 'integer', 'boolean'].includes(type) ? type : 'json';
}

const label = (schema, name) => (schema && schema.title) || humanize(name);

/** The frame of one field: label, hint, control, error message. */
function frame(schema, name, required, control, { group = false } = {}) {
  const id = control.id || uid('f');
  const hint = schema && schema.description ? h('p', { class: 'field-hint', id: `${id}-hint`, text: schema.description }) : null;
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const describedBy = [hint && hint.id, error.id].filter(Boolean).join(' ');
  const title = [label(schema, name), required ? h('span', { class: 'required', 'aria-hidden': 'true', text: ' *' }) : null];
  let el;
  if (group) {
    control.setAttribute('aria-describedby', describedBy);
    el = h('fieldset', { class: 'field field-group' }, h('legend', {}, title), hint, control, error);
  } else {
    control.id = id;
    control.setAttribute('aria-describedby', describedBy);
    if (required) control.setAttribute('aria-required', 'true');
    el = h('div', { class: 'field' }, h('label', { for: id }, title), hint, control, error);
  }
  return {
    el,
    setError(message) {
      error.hidden = !message;
      error.textContent = message || '';
      el.classList.toggle('invalid', Boolean(message));
      const target = group ? control.querySelector('input, select, textarea') || control : control;
      if (message) target.setAttribute('aria-invalid', 'true');
      else target.removeAttribute('aria-invalid');
    },
    focus() {
      const target = group ? control.querySelector('input, select, textarea, button') : control;
      if (target) target.focus();
    },
  };
}

/** A node: { el, read() → {present, value, invalid}, focus() }. */
function node(schema, name, required) {
  switch (kindOf(schema)) {
    case 'object': return objectNode(schema, name, required);
    case 'array': return arrayNode(schema, name, required);
    case 'string': return stringNode(schema, name, required);
    case 'number': case 'integer': return numberNode(schema, name, required);
    case 'boolean': return choiceNode(schema, name, required, [true, false], ['Yes', 'No']);
    case 'enum': return choiceNode(schema, name, required, schema.enum, schema.enum.map(String));
    case 'const': return constNode(schema, name);
    default: return jsonNode(schema, name, required);
  }
}

function result(f, present, value, message) {
  f.setError(message);
  return { present, value, invalid: Boolean(message), focus: () => f.focus() };
}

function stringNode(schema, name, required) {
  const long = schema.format === 'textarea' || !schema.maxLength || schema.maxLength > LONG_TEXT;
  const inputType = { email: 'email', uri: 'url', date: 'date', 'date-time': 'datetime-local', time: 'time' }[schema.format];
  const control = long && !inputType
    ? h('textarea', { rows: 3, name })
    : h('input', { type: inputType || 'text', name });
  if (schema.maxLength) control.setAttribute('maxlength', String(schema.maxLength));
  if (typeof schema.default === 'string') control.value = schema.default;
  const f = frame(schema, name, required, control);
  return {
    el: f.el,
    focus: f.focus,
    read() {
      const value = control.value;
      if (value === '') return result(f, false, undefined, required ? 'Required.' : '');
      if (schema.minLength && value.length < schema.minLength) return result(f, true, value, `At least ${schema.minLength} characters.`);
      if (schema.maxLength && value.length > schema.maxLength) return result(f, true, value, `At most ${schema.maxLength} characters.`);
      if (schema.pattern) {
        let re = null;
        try { re = new RegExp(schema.pattern, 'u'); } catch { re = null; }
        if (re && !re.test(value)) return result(f, true, value, `Must match ${schema.pattern}.`);
      }
      return result(f, true, value, '');
    },
  };
}

function numberNode(schema, name, required) {
  const integer = kindOf(schema) === 'integer';
  const control = h('input', { type: 'number', name, inputmode: integer ? 'numeric' : 'decimal', step: integer ? '1' : 'any' });
  if (schema.minimum !== undefined) control.min = String(schema.minimum);
  if (schema.maximum !== undefined) control.max = String(schema.maximum);
  if (typeof schema.default === 'number') control.value = String(schema.default);
  const f = frame(schema, name, required, control);
  return {
    el: f.el,
    focus: f.focus,
    read() {
      const text = control.value.trim();
      if (text === '') return result(f, false, undefined, required ? 'Required.' : '');
      const value = Number(text);
      if (!Number.isFinite(value)) return result(f, true, text, 'Not a number.');
      if (integer && !Number.isInteger(value)) return result(f, true, value, 'A whole number.');
      if (schema.minimum !== undefined && value < schema.minimum) return result(f, true, value, `At least ${schema.minimum}.`);
      if (schema.maximum !== undefined && value > schema.maximum) return result(f, true, value, `At most ${schema.maximum}.`);
      return result(f, true, value, '');
    },
  };
}

/** One choice among `values` (booleans and enums): radios, or a select when there are many. */
function choiceNode(schema, name, required, values, names) {
  const groupName = uid('choice');
  const initial = values.findIndex((v) => JSON.stringify(v) === JSON.stringify(schema.default));
  let control;
  let selected;
  if (values.length <= MAX_RADIO_CHOICES) {
    const radios = values.map((_, i) => h('input', { type: 'radio', name: groupName, value: String(i), id: uid('r'), checked: i === initial }));
    control = h('div', { class: 'choices', role: 'radiogroup' },
      radios.map((radio, i) => h('label', { class: 'choice', for: radio.id }, radio, h('span', { text: names[i] }))));
    selected = () => radios.findIndex((r) => r.checked);
    const f = frame(schema, name, required, control, { group: true });
    return choiceResult(f, required, values, selected);
  }
  const select = h('select', { name },
    h('option', { value: '', text: 'Choose…' }),
    values.map((_, i) => h('option', { value: String(i), text: names[i], selected: i === initial })));
  selected = () => (select.value === '' ? -1 : Number(select.value));
  return choiceResult(frame(schema, name, required, select), required, values, selected);
}

function choiceResult(f, required, values, selected) {
  return {
    el: f.el,
    focus: f.focus,
    read() {
      const i = selected();
      if (i < 0) return result(f, false, undefined, required ? 'Choose one.' : '');
      return result(f, true, values[i], '');
    },
  };
}

function constNode(schema, name) {
  const el = h('div', { class: 'field const' }, h('span', { class: 'field-label', text: label(schema, name) }), h('code', { text: JSON.stringify(schema.const) }));
  return { el, focus() {}, read: () => ({ present: true, value: schema.const, invalid: false }) };
}

function jsonNode(schema, name, required) {
  const control = h('textarea', { rows: 4, name, class: 'mono', spellcheck: 'false' });
  if (schema && schema.default !== undefined) control.value = JSON.stringify(schema.default, null, 2);
  const f = frame({ ...schema, description: [schema && schema.description, 'Any JSON value.'].filter(Boolean).join(' ') }, name, required, control);
  return {
    el: f.el,
    focus: f.focus,
    read() {
      const text = control.value.trim();
      if (text === '') return result(f, false, undefined, required ? 'Required.' : '');
      try { return result(f, true, JSON.parse(text), ''); } catch (err) { return result(f, true, text, `Not JSON: ${err.message}`); }
    },
  };
}

function objectNode(schema, name, required, { root = false } = {}) {
  const properties = schema.properties || {};
  const requiredSet = new Set(Array.isArray(schema.required) ? schema.required : []);
  const children = Object.entries(properties).map(([key, sub]) => [key, node(sub, key, requiredSet.has(key))]);
  const body = children.length
    ? children.map(([, child]) => child.el)
    : [jsonNode({ description: 'This object has no declared properties.' }, name, required).el];
  const el = root
    ? h('div', { class: 'schema-object' }, body)
    : h('fieldset', { class: 'field-group nested' }, h('legend', { text: label(schema, name) }), schema.description ? h('p', { class: 'field-hint', text: schema.description }) : null, body);
  const fallback = children.length ? null : jsonNode({}, name, required);
  return {
    el,
    focus() { if (children[0]) children[0][1].focus(); },
    read() {
      if (fallback) return fallback.read();
      const value = {};
      let invalid = false;
      let focus = null;
      for (const [key, child] of children) {
        const r = child.read();
        if (r.invalid) { invalid = true; focus = focus || r.focus || child.focus; }
        if (r.present) value[key] = r.value;
      }
      return { present: true, value, invalid, focus };
    },
  };
}

function arrayNode(schema, name, required) {
  const items = schema.items || {};
  const itemKind = kindOf(items);
  if (itemKind === 'enum') return multiChoiceNode(schema, name, required, items.enum);
  if (itemKind === 'object') return repeaterNode(schema, name, required, items);
  if (['string', 'number', 'integer'].includes(itemKind)) return linesNode(schema, name, required, itemKind);
  return jsonNode(schema, name, required);
}

function countCheck(schema, count) {
  if (schema.minItems && count < schema.minItems) return `At least ${schema.minItems}.`;
  if (schema.maxItems && count > schema.maxItems) return `At most ${schema.maxItems}.`;
  return '';
}

function multiChoiceNode(schema, name, required, values) {
  const boxes = values.map((v) => h('input', { type: 'checkbox', id: uid('c'), value: String(v) }));
  const defaults = Array.isArray(schema.default) ? schema.default.map((v) => JSON.stringify(v)) : [];
  boxes.forEach((box, i) => { box.checked = defaults.includes(JSON.stringify(values[i])); });
  const control = h('div', { class: 'choices' }, boxes.map((box, i) => h('label', { class: 'choice', for: box.id }, box, h('span', { text: String(values[i]) }))));
  const f = frame(schema, name, required, control, { group: true });
  return {
    el: f.el,
    focus: f.focus,
    read() {
      const value = values.filter((_, i) => boxes[i].checked);
      if (!value.length && !required) return result(f, false, undefined, '');
      return result(f, true, value, countCheck(schema, value.length));
    },
  };
}

function linesNode(schema, name, required, itemKind) {
  const control = h('textarea', { rows: 3, name });
  if (Array.isArray(schema.default)) control.value = schema.default.join('\n');
  const f = frame({ ...schema, description: [schema.description, 'One per line.'].filter(Boolean).join(' ') }, name, required, control);
  return {
    el: f.el,
    focus: f.focus,
    read() {
      const lines = control.value.split('\n').map((l) => l.trim()).filter(Boolean);
      if (!lines.length && !required) return result(f, false, undefined, '');
      if (itemKind !== 'string') {
        const numbers = lines.map(Number);
        if (numbers.some((n) => !Number.isFinite(n) || (itemKind === 'integer' && !Number.isInteger(n)))) {
          return result(f, true, lines, itemKind === 'integer' ? 'Whole numbers only.' : 'Numbers only.');
        }
        return result(f, true, numbers, countCheck(schema, numbers.length));
      }
      return result(f, true, lines, countCheck(schema, lines.length));
    },
  };
}

function repeaterNode(schema, name, required, items) {
  const rows = [];
  const list = h('div', { class: 'repeater' });
  const add = h('button', { type: 'button', class: 'button small', text: `Add ${label(items, 'item').toLowerCase()}` });
  const control = h('div', { class: 'repeater-wrap' }, list, add);
  const f = frame(schema, name, required, control, { group: true });
  const addRow = () => {
    const child = objectNode(items, `${label(items, 'Item')} ${rows.length + 1}`, true);
    const remove = h('button', { type: 'button', class: 'button small ghost', text: 'Remove' });
    const row = h('div', { class: 'repeater-row' }, child.el, remove);
    const entry = { child, row };
    remove.addEventListener('click', () => { rows.splice(rows.indexOf(entry), 1); row.remove(); });
    rows.push(entry);
    list.append(row);
  };
  add.addEventListener('click', addRow);
  return {
    el: f.el,
    focus: f.focus,
    read() {
      const results = rows.map((r) => r.child.read());
      const bad = results.find((r) => r.invalid);
      if (!rows.length && !required) return result(f, false, undefined, '');
      const out = result(f, true, results.map((r) => r.value), bad ? '' : countCheck(schema, rows.length));
      if (bad) return { ...out, invalid: true, focus: bad.focus };
      return out;
    },
  };
}

/**
 * A form for `schema`. Returns { element, read() }: read() validates, marks
 * the invalid fields, moves focus to the first and returns
 * { ok, value }.
 */
export function schemaForm(schema) {
  const root = kindOf(schema) === 'object'
    ? objectNode(schema, 'answer', true, { root: true })
    : node(schema, schema && schema.title ? schema.title : 'answer', true);
  return {
    element: root.el,
    read() {
      const r = root.read();
      if (r.invalid) {
        if (r.focus) r.focus();
        return { ok: false };
      }
      return { ok: true, value: r.present ? r.value : null };
    },
  };
}
