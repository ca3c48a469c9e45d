// The transcript: messages, streamed drafts, tool calls with their results
// (collapsible), handoffs, run status changes, errors and UI tool cards,
// in the order the events arrive.

import { h, clear, clock, pretty, compact } from './dom.js';

/** Within this many pixels of the bottom, new content keeps the view pinned. */
const STICK_TO_BOTTOM_PX = 80;

const STATUS_TEXT = {
  running: 'Running',
  waiting_for_user: 'Waiting for you',
  waiting_for_speaker: 'Pick a speaker',
  interrupted: 'Interrupted',
  completed: 'Completed',
  failed: 'Failed',
};

export function statusText(status) {
  return STATUS_TEXT[status] || status || '—';
}

function reasonText(reason) {
  switch (reason && reason.kind) {
    case 'context': return `${reason.scope} condition ${reason.condition}`;
    case 'llm': return `the agent called ${reason.tool}`;
    case 'after_work': return 'after work';
    case 'pattern': return reason.pattern;
    case 'user': return 'picked by the user';
    case 'max_turns': return 'max turns reached';
    default: return reason ? compact(reason) : '';
  }
}

export class Transcript {
  /** list: the <ol>; ui: the UiTools. */
  constructor(list, ui) {
    this.list = list;
    this.ui = ui;
    // Follow new content (also content that grows later, such as a form
    // that finished loading) while the reader is at the bottom.
    this.pinned = true;
    list.addEventListener('scroll', () => { this.pinned = this.nearBottom(); });
    new MutationObserver(() => { if (this.pinned) list.scrollTop = list.scrollHeight; })
      .observe(list, { childList: true, subtree: true, characterData: true });
    this.reset();
  }

  nearBottom() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < STICK_TO_BOTTOM_PX;
  }

  reset() {
    clear(this.list);
    this.pinned = true;
    /** agent → { item, text } for text streaming in. */
    this.drafts = new Map();
    /** call_id → the tool call's elements. */
    this.calls = new Map();
  }

  /**
   * The workflow's `visual_agents` (ui_config.json): only these (and `user`
   * when listed) are chat bubbles, the others' messages are trace lines.
   * Empty: everyone is a bubble.
   */
  setVisualAgents(names) {
    this.visual = new Set(names || []);
  }

  isTrace(agent) {
    return Boolean(this.visual && this.visual.size > 0 && !this.visual.has(agent));
  }

  /** A message of an agent that is not a visual agent: one muted line. */
  trace(who, event, text) {
    return this.add(h('li', { class: 'line line-trace', dataset: { agent: who, seq: event.seq } },
      h('time', { class: 'ts', text: clock(event.ts) }),
      h('span', { class: 'trace-who', text: `${who}: ` }),
      h('span', { class: 'trace-text', text })));
  }

  add(item) {
    this.list.append(item);
    return item;
  }

  line(kind, ts, ...children) {
    return this.add(h('li', { class: `line line-${kind}` }, h('time', { class: 'ts', text: clock(ts) }), children));
  }

  message(kind, who, ts, text, extra = {}) {
    return this.add(h('li', { class: `message message-${kind}`, dataset: extra },
      h('div', { class: 'message-head' }, h('span', { class: 'who', text: who }), ts ? h('time', { class: 'ts', text: clock(ts) }) : null),
      h('div', { class: 'message-text', text })));
  }

  /** A text_delta: append to the agent's draft. */
  delta(event) {
    if (this.isTrace(event.agent)) return;
    let draft = this.drafts.get(event.agent);
    if (!draft) {
      const item = this.message('agent draft', event.agent, event.ts, '', { agent: event.agent });
      item.setAttribute('aria-busy', 'true');
      draft = { item, text: '' };
      this.drafts.set(event.agent, draft);
    }
    draft.text += event.delta;
    draft.item.querySelector('.message-text').textContent = draft.text;
  }

  dropDrafts() {
    for (const draft of this.drafts.values()) draft.item.remove();
    this.drafts.clear();
  }

  agentMessage(event) {
    const draft = this.drafts.get(event.agent);
    this.drafts.delete(event.agent);
    const hasText = event.text && event.text.trim() !== '';
    if (!hasText && !event.structured) {
      if (draft) draft.item.remove();
      return;
    }
    if (this.isTrace(event.agent)) {
      if (draft) draft.item.remove();
      this.trace(event.agent, event, hasText ? event.text : compact(event.structured, 300));
      return;
    }
    let item;
    if (event.structured) {
      item = h('li', { class: 'message message-agent message-structured', dataset: { agent: event.agent, seq: event.seq } },
        h('div', { class: 'message-head' }, h('span', { class: 'who', text: event.agent }), h('span', { class: 'tag', text: event.model }), h('time', { class: 'ts', text: clock(event.ts) })),
        typeof event.structured.message === 'string' ? h('div', { class: 'message-text', text: event.structured.message }) : null,
        h('dl', { class: 'structured' }, Object.entries(event.structured)
          .filter(([key]) => key !== 'message')
          .map(([key, value]) => h('div', { class: 'prop' }, h('dt', { text: key }), h('dd', { text: typeof value === 'string' ? value : compact(value, 300) })))));
    } else {
      item = h('li', { class: 'message message-agent', dataset: { agent: event.agent, seq: event.seq } },
        h('div', { class: 'message-head' }, h('span', { class: 'who', text: event.agent }), h('time', { class: 'ts', text: clock(event.ts) })),
        h('div', { class: 'message-text', text: event.text }));
    }
    if (draft) draft.item.replaceWith(item);
    else this.add(item);
  }

  toolCall(event) {
    const existing = this.calls.get(event.call_id);
    if (existing) {
      // The call runs again after a restart: same call, new run.
      existing.state.textContent = 'running again';
      existing.details.dataset.state = 'running';
      return;
    }
    const state = h('span', { class: 'tool-state', text: 'running' });
    const result = h('div', { class: 'tool-result' });
    const details = h('details', { class: 'tool', dataset: { callId: event.call_id, tool: event.tool, state: 'running' } },
      h('summary', {},
        h('span', { class: 'tool-icon', 'aria-hidden': 'true', text: '⚙' }),
        h('span', { class: 'tool-name', text: event.tool }),
        h('span', { class: 'tool-agent', text: event.agent }),
        state,
        h('span', { class: 'tool-preview', text: compact(event.arguments, 70) })),
      h('div', { class: 'tool-body' },
        h('p', { class: 'tool-label', text: 'Arguments' }),
        h('pre', { class: 'json', text: pretty(event.arguments) }),
        result));
    this.calls.set(event.call_id, { details, state, result });
    this.add(h('li', { class: 'line line-tool' }, h('time', { class: 'ts', text: clock(event.ts) }), details));
  }

  toolResult(event) {
    let call = this.calls.get(event.call_id);
    if (!call) {
      this.toolCall({ ...event, arguments: '' });
      call = this.calls.get(event.call_id);
    }
    call.details.dataset.state = event.ok ? 'ok' : 'failed';
    call.state.textContent = event.ok ? 'ok' : `failed${event.error ? ` (${event.error.kind})` : ''}`;
    clear(call.result);
    call.result.append(h('p', { class: 'tool-label', text: event.ok ? 'Result' : 'Error' }), h('pre', { class: 'json', text: pretty(event.content) }));
  }

  /** Applies one event. live: it happened now (not replayed history). */
  apply(event, { live }) {
    switch (event.type) {
      case 'user_message':
        if (this.isTrace('user')) this.trace('You', event, event.text);
        else this.message('user', 'You', event.ts, event.text, { seq: event.seq });
        break;
      case 'agent_message':
        this.agentMessage(event);
        break;
      case 'speaker':
        this.line('speaker', event.ts, h('span', { text: `${event.agent} speaks` }), h('span', { class: 'muted', text: ` · turn ${event.turn}` }));
        break;
      case 'handoff':
        this.line('handoff', event.ts,
          h('span', { class: 'handoff' }, h('strong', { text: event.from }), ' → ', h('strong', { text: event.to })),
          h('span', { class: 'muted', text: ` · ${reasonText(event.reason)}` }));
        break;
      case 'tool_call':
        this.toolCall(event);
        break;
      case 'tool_result':
        this.toolResult(event);
        break;
      case 'ui_request': {
        const item = this.ui.request(event, { live });
        if (item) this.add(h('li', { class: 'line line-ui' }, item));
        break;
      }
      case 'ui_response':
        this.ui.respond(event);
        break;
      case 'ui_notify':
        this.add(h('li', { class: 'line line-ui' }, this.ui.notify(event, { live })));
        break;
      case 'run_status':
        if (['interrupted', 'failed', 'completed'].includes(event.status)) this.dropDrafts();
        if (['completed', 'failed'].includes(event.status)) this.ui.closeAll(`The run ${event.status === 'failed' ? 'failed' : 'ended'}.`);
        if (event.status !== 'waiting_for_user' && (event.status !== 'running' || event.reason)) {
          this.line(`status status-${event.status}`, event.ts, h('span', { class: 'status-pill', dataset: { status: event.status }, text: statusText(event.status) }),
            event.reason ? h('span', { class: 'muted', text: ` ${event.reason}` }) : null);
        }
        break;
      case 'error':
        this.dropDrafts();
        this.add(h('li', { class: 'line line-error', role: 'alert' },
          h('time', { class: 'ts', text: clock(event.ts) }),
          h('strong', { class: 'error-code', text: event.code }), ' ', h('span', { text: event.message })));
        break;
      case 'warning':
        this.line('warning', event.ts, h('strong', { class: 'error-code', text: event.code }), ' ', h('span', { text: event.message }));
        break;
      case 'structured_output_retry':
        this.line('warning', event.ts, h('strong', { text: `${event.agent}: ${event.model} did not validate; asked again` }),
          h('ul', { class: 'errors' }, (event.errors || []).map((e) => h('li', { text: e }))));
        break;
      case 'run_moved':
        this.line('system', event.ts, h('span', { text: `run moved from ${event.from} to ${event.to}` }));
        break;
      case 'speaker_request':
        this.line('speaker', event.ts, h('span', { text: `Who speaks next? ${event.candidates.join(', ')}` }));
        break;
      default:
        break; // context_changed and usage go to the panels; unknown types are ignored
    }
  }
}
