// UI tool requests (ui_request) and notes (ui_notify): rendered with the
// workflow's own component when it ships one
// (workflows/<Name>/components/<Component>.js, an ES module exporting
// render(container, request, submit)), otherwise as a form generated from
// the answer's JSON Schema (payload.schema, else
// workflows/<Name>/components/<Component>.schema.json), otherwise as a
// JSON answer box. Inline requests sit in the transcript; artifact ones in
// the side panel, with a pointer in the transcript.

import { api, fetchFile } from './api.js';
import { h, clear, humanize, compact } from './dom.js';
import { schemaForm } from './schemaform.js';

/** Shown props: these keys first, as a heading or a paragraph. */
const HEADLINE_KEYS = ['question', 'title'];
const TEXT_KEYS = ['message', 'details', 'description'];

/** What the page knows of one workflow's components folder. */
class ComponentIndex {
  constructor(workflow, files) {
    this.workflow = workflow;
    this.files = new Set(files);
    this.modules = new Map();
    this.schemas = new Map();
  }

  url(file) {
    return `/api/workflows/${encodeURIComponent(this.workflow)}/components/${encodeURIComponent(file)}`;
  }

  /** The component's module, or null when the workflow ships none. */
  module(component) {
    const file = `${component}.js`;
    if (!this.files.has(file)) return Promise.resolve(null);
    if (!this.modules.has(file)) {
      // Fetched with the API key, then imported from a blob URL: an
      // import() of the URL itself could not carry the key.
      this.modules.set(file, fetchFile(this.url(file))
        .then((response) => response.text())
        .then((source) => {
          const blob = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
          return import(blob).finally(() => URL.revokeObjectURL(blob));
        }));
    }
    return this.modules.get(file);
  }

  /** The answer schema the workflow ships for the component, or null. */
  schema(component) {
    const file = `${component}.schema.json`;
    if (!this.files.has(file)) return Promise.resolve(null);
    if (!this.schemas.has(file)) this.schemas.set(file, fetchFile(this.url(file)).then((r) => r.json()));
    return this.schemas.get(file);
  }
}

function propValue(value) {
  if (Array.isArray(value)) {
    if (!value.length) return h('span', { class: 'muted', text: 'none' });
    if (value.every((v) => v && typeof v === 'object' && !Array.isArray(v))) {
      const columns = [...new Set(value.flatMap((v) => Object.keys(v)))].slice(0, 6);
      return h('table', { class: 'props-table' },
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: humanize(c) })))),
        h('tbody', {}, value.map((row) => h('tr', {}, columns.map((c) => h('td', { text: row[c] === undefined ? '' : compact(row[c], 80) }))))));
    }
    return h('ul', { class: 'props-list' }, value.map((v) => h('li', { text: compact(v, 200) })));
  }
  if (value && typeof value === 'object') return h('pre', { class: 'json', text: JSON.stringify(value, null, 2) });
  if (value === null || value === undefined) return h('span', { class: 'muted', text: '—' });
  return h('span', { text: String(value) });
}

/** The request's payload, readable: headline, text, then the rest. */
export function renderProps(payload) {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
    return h('div', { class: 'ui-props' }, propValue(payload));
  }
  const parts = [];
  const rest = [];
  for (const [key, value] of Object.entries(payload)) {
    if (key === 'schema') continue;
    if (HEADLINE_KEYS.includes(key) && typeof value === 'string') parts.unshift(h('p', { class: 'ui-headline', text: value }));
    else if (TEXT_KEYS.includes(key) && typeof value === 'string') parts.push(h('p', { class: 'ui-text', text: value }));
    else rest.push(h('div', { class: 'prop' }, h('dt', { text: humanize(key) }), h('dd', {}, propValue(value))));
  }
  return h('div', { class: 'ui-props' }, parts, rest.length ? h('dl', { class: 'props' }, rest) : null);
}

function isSchema(value) {
  return value && typeof value === 'object' && !Array.isArray(value) && (value.type || value.properties || value.enum);
}

const seconds = (ms) => `${Math.round(ms / 1000)} s`;

function countdownText(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60);
  const s = String(total % 60).padStart(2, '0');
  return `${m}:${s}`;
}

export class UiTools {
  /**
   * submit(requestId, answer) → Promise; artifact: { body, add(card), show(card) }.
   */
  constructor({ submit, artifact }) {
    this.submit = submit;
    this.artifact = artifact;
    this.indexes = new Map();
    /** request_id → { card, state, stop() } */
    this.requests = new Map();
    this.workflow = null;
  }

  /** The workflow whose components render requests from now on. */
  setWorkflow(workflow) {
    this.workflow = workflow;
  }

  /** Forgets every request (another chat was opened). */
  reset() {
    for (const entry of this.requests.values()) entry.stop();
    this.requests.clear();
    clear(this.artifact.body);
  }

  /** Drops the cached components (a workflow reload may have changed them). */
  forgetComponents() {
    this.indexes.clear();
  }

  index(workflow) {
    if (!this.indexes.has(workflow)) {
      this.indexes.set(workflow, api('GET', `/api/workflows/${encodeURIComponent(workflow)}/components`)
        .then((body) => new ComponentIndex(workflow, (body && body.files) || []))
        .catch(() => new ComponentIndex(workflow, [])));
    }
    return this.indexes.get(workflow);
  }

  isShown(requestId) {
    const entry = this.requests.get(requestId);
    return Boolean(entry && entry.state === 'open');
  }

  /**
   * A ui_request: returns what goes in the transcript (the card itself, or
   * for an artifact a pointer to the side panel), or null when the request
   * is already shown.
   */
  request(event, { live }) {
    if (this.requests.has(event.request_id)) return null;
    const status = h('span', { class: 'badge', text: 'Waiting for you' });
    const countdown = h('span', { class: 'countdown', 'aria-label': 'Time left to answer' });
    const body = h('div', { class: 'ui-body' }, h('p', { class: 'muted', text: 'Loading the component…' }));
    const outcome = h('p', { class: 'ui-outcome', role: 'status' });
    const props = renderProps(event.payload);
    const card = h('article', {
      class: 'ui-card',
      dataset: { requestId: event.request_id, state: 'open', component: event.component },
      'aria-label': `${humanize(event.component)}: asked by ${event.tool}`,
    },
    h('header', { class: 'ui-card-head' },
      h('span', { class: 'ui-card-title', text: event.component }),
      h('span', { class: 'ui-card-tool', text: `${event.tool} · ${event.display}` }),
      status, countdown),
    props,
    body,
    outcome);
    const entry = { card, body, props, state: 'open', status, outcome, countdown, timer: null, stop() { clearInterval(this.timer); } };
    this.requests.set(event.request_id, entry);
    const deadline = event.ts + event.timeout_ms;
    const tick = () => {
      const left = deadline - Date.now();
      if (left <= 0) {
        // Provisional: the server's ui_response (replayed or live) has the last word.
        this.close(event.request_id, 'expired', `Expired: nobody answered within ${seconds(event.timeout_ms)}.`);
        entry.provisional = true;
        return;
      }
      countdown.textContent = countdownText(left);
    };
    tick();
    if (entry.state === 'open') entry.timer = setInterval(tick, 1000);
    this.fill(body, event, entry);

    if (event.display === 'artifact') {
      this.artifact.add(card);
      if (live) this.artifact.show(card);
      return h('div', { class: 'ui-pointer' },
        h('span', { text: `${event.component} is in the artifact panel.` }),
        h('button', { type: 'button', class: 'button small', text: 'Show', on: { click: () => this.artifact.show(card) } }));
    }
    return card;
  }

  async fill(body, event, entry) {
    const workflow = this.workflow;
    const index = await this.index(workflow);
    const submit = async (answer) => {
      if (entry.state !== 'open') throw new Error('this request is no longer open');
      await this.submit(event.request_id, answer);
    };
    let note = null;
    try {
      const module = await index.module(event.component);
      if (entry.state !== 'open' && !entry.provisional) return; // closed while loading: nothing to answer
      if (module && typeof module.render === 'function') {
        // The component shows the payload its own way.
        entry.props.remove();
        clear(body);
        const container = h('div', { class: 'ui-component' });
        body.append(container);
        await module.render(container, event, submit);
        return;
      }
    } catch (err) {
      if (!entry.props.isConnected) body.before(entry.props);
      note = h('p', { class: 'field-error', text: `${event.component}.js failed (${err.message}); showing a generated form instead.` });
    }
    let schema = isSchema(event.payload && event.payload.schema) ? event.payload.schema : null;
    let source = 'the request';
    if (!schema) {
      try {
        schema = await index.schema(event.component);
        source = `components/${event.component}.schema.json`;
      } catch {
        schema = null;
      }
    }
    if (entry.state !== 'open' && !entry.provisional) return;
    if (!isSchema(schema)) {
      schema = { title: 'Answer', description: `${workflow} ships no component or schema for ${event.component}: answer with JSON.` };
      source = null;
    }
    this.generatedForm(body, schema, source, submit, entry);
    if (note) body.prepend(note);
  }

  generatedForm(body, schema, source, submit, entry) {
    const form = schemaForm(schema);
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const send = h('button', { type: 'submit', class: 'button primary', text: 'Send answer' });
    const fieldset = h('fieldset', { class: 'ui-fieldset' }, h('legend', { class: 'visually-hidden', text: schema.title || 'Answer' }), form.element);
    const el = h('form', { class: 'ui-form', novalidate: true, dataset: { generated: 'true' } },
      schema.title ? h('p', { class: 'ui-form-title', text: schema.title }) : null,
      fieldset,
      h('div', { class: 'ui-form-foot' }, send, error, source ? h('span', { class: 'muted small', text: `Form generated from ${source}` }) : null));
    el.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      const read = form.read();
      if (!read.ok) return;
      send.disabled = true;
      send.textContent = 'Sending…';
      try {
        await submit(read.value);
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        send.disabled = false;
        send.textContent = 'Send answer';
      }
    });
    entry.form = fieldset;
    entry.send = send;
    clear(body);
    body.append(el);
  }

  /** A ui_response: the request is answered, expired or cancelled. */
  respond(event) {
    const entry = this.requests.get(event.request_id);
    // A second response, or a request never shown, changes nothing.
    if (!entry || (entry.state !== 'open' && !entry.provisional)) return;
    if (event.status === 'answered') this.close(event.request_id, 'answered', `Answered: ${compact(event.answer, 160)}`);
    else if (event.status === 'timeout') this.close(event.request_id, 'expired', 'Expired: nobody answered in time.');
    else this.close(event.request_id, 'cancelled', `Cancelled: ${event.reason || 'no reason given'}.`);
    entry.provisional = false;
  }

  /** The run ended: no request is open any more. */
  closeAll(reason) {
    for (const [id, entry] of this.requests) if (entry.state === 'open') this.close(id, 'cancelled', reason);
  }

  close(requestId, state, text) {
    const entry = this.requests.get(requestId);
    if (!entry || (entry.state !== 'open' && !entry.provisional)) return;
    entry.stop();
    entry.state = state;
    entry.card.dataset.state = state;
    entry.status.textContent = { answered: 'Answered', expired: 'Expired', cancelled: 'Cancelled' }[state];
    entry.countdown.textContent = '';
    entry.outcome.textContent = text;
    if (entry.form) {
      // Keep what was filled in, read-only.
      entry.form.disabled = true;
      entry.send.hidden = true;
    } else {
      // Closed before its form was shown (e.g. history replayed): the outcome says it all.
      entry.body.hidden = true;
    }
    entry.card.querySelectorAll('.ui-component button, .ui-component input, .ui-component select, .ui-component textarea')
      .forEach((control) => { control.disabled = true; });
  }

  /** A ui_notify: a note that needs no answer. */
  notify(event, { live }) {
    const card = h('article', { class: 'ui-card ui-note', dataset: { component: event.component, state: 'note' } },
      h('header', { class: 'ui-card-head' },
        h('span', { class: 'ui-card-title', text: event.component }),
        h('span', { class: 'ui-card-tool', text: event.tool })),
      renderProps(event.payload));
    this.index(this.workflow).then((index) => index.module(event.component)).then((module) => {
      if (module && typeof module.render === 'function') {
        const container = h('div', { class: 'ui-component' });
        card.replaceChildren(card.firstChild, container);
        module.render(container, event, () => Promise.reject(new Error('a note takes no answer')));
      }
    }).catch(() => {});
    if (event.display === 'artifact') {
      this.artifact.add(card);
      if (live) this.artifact.show(card);
      return h('div', { class: 'ui-pointer', text: `${event.component} is shown in the artifact panel.` });
    }
    return card;
  }
}
