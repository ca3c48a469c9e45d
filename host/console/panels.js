// The live panels: the chat's context variables, the plugins with their
// last reload, the workflows with their problems, and the toasts.

import { api } from './api.js';
import { h, clear, clock, dateTime, compact, pretty } from './dom.js';

/** How long a toast stays; failures stay until dismissed. */
const TOAST_MS = 10000;

export class Toasts {
  constructor(region) {
    this.region = region;
  }

  /** kind: info, success, error. */
  show(title, text, { kind = 'info', sticky = false } = {}) {
    const close = h('button', { type: 'button', class: 'icon-button toast-close', 'aria-label': 'Dismiss', text: '✕' });
    const toast = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      h('div', { class: 'toast-body' }, h('strong', { class: 'toast-title', text: title }), text ? h('p', { text }) : null),
      close);
    const dismiss = () => toast.remove();
    close.addEventListener('click', dismiss);
    this.region.prepend(toast);
    if (!sticky) {
      let timer = setTimeout(dismiss, TOAST_MS);
      toast.addEventListener('mouseenter', () => clearTimeout(timer));
      toast.addEventListener('mouseleave', () => { timer = setTimeout(dismiss, TOAST_MS); });
    }
    return toast;
  }
}

export class ContextPanel {
  constructor(el) {
    this.el = el;
    this.values = new Map();
    this.rows = new Map();
    this.table = null;
    this.reset(null);
  }

  /** chatId null: no chat open. */
  reset(chatId) {
    this.values.clear();
    this.rows.clear();
    clear(this.el);
    if (!chatId) {
      this.table = null;
      this.el.append(h('p', { class: 'empty', text: 'No chat open.' }));
      return;
    }
    this.table = h('tbody');
    this.el.append(h('table', { class: 'context-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Variable' }), h('th', { scope: 'col', text: 'Value' }))),
      this.table));
  }

  /** A context_changed event; live ones flash. */
  apply(event, { live }) {
    if (!this.table) return;
    const removed = !Object.prototype.hasOwnProperty.call(event, 'value');
    let row = this.rows.get(event.key);
    if (removed) {
      if (row) row.remove();
      this.rows.delete(event.key);
      this.values.delete(event.key);
      return;
    }
    this.values.set(event.key, event.value);
    const value = event.value;
    const long = value !== null && typeof value === 'object';
    const cell = long
      ? h('details', {}, h('summary', { text: compact(value, 60) }), h('pre', { class: 'json', text: pretty(value) }))
      : h('code', { class: 'value', text: JSON.stringify(value) });
    const content = [
      h('th', { scope: 'row' }, h('span', { class: 'key', text: event.key })),
      h('td', {}, cell, h('span', { class: 'by', text: `${event.by} · ${clock(event.ts)}` })),
    ];
    if (row) {
      row.replaceChildren(...content);
    } else {
      row = h('tr', { dataset: { key: event.key } }, content);
      // Keep the rows in key order.
      const after = [...this.rows.keys()].filter((k) => k > event.key).sort()[0];
      if (after) this.table.insertBefore(row, this.rows.get(after));
      else this.table.append(row);
      this.rows.set(event.key, row);
    }
    row.dataset.by = event.by;
    if (live) {
      row.classList.remove('flash');
      void row.offsetWidth; // restart the animation
      row.classList.add('flash');
    }
  }
}

export class PluginsPanel {
  constructor(el) {
    this.el = el;
    /** plugin id → its last reload frame. */
    this.lastReload = new Map();
    this.plugins = null;
    this.unavailable = null;
  }

  async refresh() {
    try {
      const body = await api('GET', '/api/plugins');
      this.plugins = (body && body.plugins) || [];
      this.unavailable = null;
    } catch (err) {
      this.plugins = null;
      this.unavailable = err.status === 404 ? 'This server does not list its plugins (no /api/plugins).' : err.message;
    }
    this.render();
  }

  /** Reload frames from GET /api/reloads (history, oldest first). */
  async history() {
    try {
      const body = await api('GET', '/api/reloads');
      for (const frame of (body && body.reloads) || []) if (frame.kind === 'plugin') this.lastReload.set(frame.name, frame);
      this.render();
    } catch { /* an older server: the live frames still come */ }
  }

  reload(frame) {
    if (frame.kind !== 'plugin') return;
    this.lastReload.set(frame.name, frame);
    this.render();
  }

  render() {
    clear(this.el);
    if (this.unavailable) {
      this.el.append(h('li', { class: 'empty', text: this.unavailable }));
      return;
    }
    if (!this.plugins) {
      this.el.append(h('li', { class: 'empty', text: 'Loading…' }));
      return;
    }
    if (!this.plugins.length) this.el.append(h('li', { class: 'empty', text: 'No plugins loaded.' }));
    for (const plugin of this.plugins) {
      const reload = this.lastReload.get(plugin.id);
      const functions = plugin.functions || [];
      this.el.append(h('li', { class: 'plugin', dataset: { plugin: plugin.id, status: plugin.status } },
        h('div', { class: 'plugin-head' },
          h('strong', { class: 'plugin-id', text: plugin.id }),
          plugin.version ? h('span', { class: 'tag', text: `v${plugin.version}` }) : null,
          h('span', { class: `badge badge-${plugin.status}`, text: plugin.status })),
        h('p', { class: 'plugin-meta' },
          plugin.hash ? h('code', { title: plugin.hash, text: plugin.hash.slice(0, 12) }) : null,
          plugin.loaded_at ? ` · loaded ${dateTime(plugin.loaded_at)}` : ''),
        reload ? h('p', { class: `plugin-reload reload-${reload.outcome}` },
          `Last reload ${clock(reload.ts)}: ${reload.outcome}`,
          reload.version ? ` (${String(reload.version).slice(0, 12)})` : '',
          reload.message ? ` · ${reload.message}` : '') : null,
        plugin.last_error ? h('p', { class: 'field-error', text: `${plugin.last_error.message}${plugin.last_error.at ? ` (${dateTime(plugin.last_error.at)})` : ''}` }) : null,
        functions.length ? h('details', { class: 'plugin-functions' },
          h('summary', { text: `${functions.length} functions` }),
          h('ul', {}, functions.map((f) => h('li', {}, h('code', { text: typeof f === 'string' ? f : f.name }))))) : null));
    }
  }
}

export class WorkflowsPanel {
  /** onSelect(name) when the user picks a workflow in the list. */
  constructor(list, select, { onSelect }) {
    this.list = list;
    this.select = select;
    this.onSelect = onSelect;
    this.workflows = [];
  }

  async refresh() {
    try {
      const body = await api('GET', '/api/workflows');
      this.workflows = (body && body.workflows) || [];
      this.error = null;
    } catch (err) {
      this.error = err.message;
    }
    this.render();
    return this.workflows;
  }

  get(name) {
    return this.workflows.find((w) => w.name === name);
  }

  render() {
    const chosen = this.select.value;
    clear(this.list);
    clear(this.select);
    if (this.error) this.list.append(h('li', { class: 'field-error', text: this.error }));
    for (const workflow of this.workflows) {
      const errors = workflow.errors || [];
      this.list.append(h('li', { class: 'workflow', dataset: { workflow: workflow.name, valid: String(workflow.valid) } },
        h('div', { class: 'workflow-head' },
          h('button', {
            type: 'button',
            class: 'link-button workflow-name',
            text: workflow.name,
            disabled: !workflow.valid,
            on: { click: () => this.onSelect(workflow.name) },
          }),
          h('span', { class: `badge ${workflow.valid ? 'badge-loaded' : 'badge-failed'}`, text: workflow.valid ? 'valid' : `${errors.length} problem${errors.length === 1 ? '' : 's'}` })),
        workflow.description ? h('p', { class: 'workflow-desc', text: workflow.description }) : null,
        workflow.valid ? h('p', { class: 'workflow-meta', text: `${workflow.orchestration_pattern} · ${workflow.startup_mode} · ${(workflow.agents || []).map((a) => a.name).join(', ')}` }) : null,
        errors.length ? h('details', { class: 'workflow-errors', open: true },
          h('summary', { text: 'Problems' }),
          h('ul', {}, errors.map((e) => h('li', {}, h('code', { text: e.text || e.message }))))) : null));
      if (workflow.valid) this.select.append(h('option', { value: workflow.name, text: workflow.name }));
    }
    if (!this.workflows.some((w) => w.valid)) this.select.append(h('option', { value: '', text: 'No valid workflow' }));
    if (chosen && this.get(chosen) && this.get(chosen).valid) this.select.value = chosen;
  }
}
