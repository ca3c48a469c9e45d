// The developer console: wires the panels, the transcript and the sockets
// to the page. docs/protocol.md is the contract; the console uses the HTTP
// routes for input (so refusals come back as answers) and the chat's
// WebSocket for everything that happens.

import { api, apiKey, owner, setApiKey, setOwner, socketUrl } from './api.js';
import { h, clear, dateTime, isNarrow } from './dom.js';
import { ContextPanel, PluginsPanel, Toasts, WorkflowsPanel } from './panels.js';
import { ChatSession, ReconnectingSocket } from './socket.js';
import { Transcript, statusText } from './transcript.js';
import { UiTools } from './uitools.js';

/** The labels this console creates chats under when nothing else is set and no key fixes them. */
const DEFAULT_OWNER = { app_id: 'console', user_id: 'developer' };
/** Statuses in which the run takes a message from the user. */
const TAKES_INPUT = new Set(['waiting_for_user', 'waiting_for_speaker']);
const ENDED = new Set(['completed', 'failed']);
/** Chats listed in the sidebar. */
const MAX_CHATS_LISTED = 50;

const $ = (id) => document.getElementById(id);
const el = {
  connection: $('connection'),
  transcript: $('transcript'),
  chatTitle: $('chat-title'),
  chatMeta: $('chat-meta'),
  runStatus: $('run-status'),
  continueChat: $('continue-chat'),
  endChat: $('end-chat'),
  composer: $('composer'),
  input: $('composer-input'),
  send: $('send'),
  hint: $('composer-hint'),
  speakerPicker: $('speaker-picker'),
  newChat: $('new-chat-form'),
  workflowSelect: $('workflow-select'),
  chatList: $('chat-list'),
  artifactPanel: $('artifact-panel'),
  artifactBody: $('artifact-body'),
  nav: $('nav'),
  inspector: $('inspector'),
  scrim: $('scrim'),
  settings: $('settings'),
  apiKeyInput: $('api-key'),
};

const toasts = new Toasts($('toasts'));
const context = new ContextPanel($('context-panel'));
const plugins = new PluginsPanel($('plugin-list'));
const workflows = new WorkflowsPanel($('workflow-list'), el.workflowSelect, {
  onSelect: (name) => {
    el.workflowSelect.value = name;
    el.workflowSelect.focus();
  },
});

const ui = new UiTools({
  submit: (requestId, answer) => api('POST', `/api/chats/${chat.id}/ui/${encodeURIComponent(requestId)}`, { answer }),
  artifact: {
    body: el.artifactBody,
    add: (card) => {
      el.artifactBody.prepend(card);
      el.artifactPanel.hidden = false;
    },
    show: (card) => {
      el.artifactPanel.hidden = false;
      if (isNarrow()) openDrawer(el.inspector);
      card.scrollIntoView({ block: 'nearest' });
    },
  },
});
const transcript = new Transcript(el.transcript, ui);

/** The open chat. */
const chat = {
  id: null,
  workflow: null,
  status: null,
  session: null,
  historyUntil: 0,
  usage: { prompt: 0, completion: 0 },
  candidates: [],
  connection: 'idle',
};

// ---------------------------------------------------------------- connection

let eventsState = 'idle';

function showConnection() {
  const state = chat.id ? chat.connection : eventsState;
  const text = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    open: chat.id ? 'Live' : 'Connected',
    retrying: 'Reconnecting…',
    closed: 'Not connected',
  }[state.split(':')[0]] || state;
  el.connection.dataset.state = state.split(':')[0];
  el.connection.textContent = text;
  if (chat.id && !ENDED.has(chat.status)) {
    el.hint.textContent = state.startsWith('retrying') ? 'The server does not answer; the console reconnects by itself.'
      : state === 'open' ? hintFor(chat.status) : el.hint.textContent;
  }
}

// ---------------------------------------------------------------- reloads

const seenReloads = new Set();

function onReload(frame) {
  const key = [frame.kind, frame.name, frame.outcome, frame.version, frame.ts].join('|');
  if (seenReloads.has(key)) return;
  seenReloads.add(key);
  const what = `${frame.kind === 'plugin' ? 'Plugin' : 'Workflow'} ${frame.name}`;
  const version = frame.version ? ` (version ${String(frame.version).slice(0, 12)})` : '';
  if (frame.outcome === 'loaded') {
    toasts.show(`${what} reloaded`, `${frame.message || 'The new version is live'}${version}`, { kind: 'success' });
  } else if (frame.outcome === 'removed') {
    toasts.show(`${what} removed`, frame.message || '', { kind: 'info' });
  } else {
    const errors = (frame.errors || []).map((e) => (typeof e === 'string' ? e : e.text || e.message)).join('\n');
    toasts.show(`${what} rejected`, [frame.message, errors].filter(Boolean).join('\n'), { kind: 'error', sticky: true });
  }
  plugins.reload(frame);
  if (frame.kind === 'plugin') plugins.refresh();
  if (frame.kind === 'workflow') ui.forgetComponents();
  workflows.refresh();
}

const events = new ReconnectingSocket({
  url: () => socketUrl('/api/events/ws'),
  onMessage: (frame) => { if (frame.type === 'reload') onReload(frame); },
  onState: (state) => {
    eventsState = state;
    if (state === 'open') {
      // Whatever changed while the socket was down.
      plugins.refresh();
      plugins.history();
      workflows.refresh();
    }
    showConnection();
  },
});

// ---------------------------------------------------------------- chat

function setStatus(status) {
  chat.status = status;
  el.runStatus.dataset.status = status || 'none';
  el.runStatus.textContent = statusText(status);
  const open = Boolean(chat.id);
  el.runStatus.hidden = !open;
  const ended = ENDED.has(status);
  el.continueChat.hidden = status !== 'interrupted';
  el.endChat.hidden = !open || ended;
  el.input.disabled = !open || ended;
  el.send.disabled = !open || !TAKES_INPUT.has(status);
  el.input.placeholder = !open ? 'Open a chat to type a message'
    : ended ? 'This chat has ended'
      : 'Message (Enter sends, Shift+Enter for a new line)';
  el.hint.textContent = open ? hintFor(status) : '';
  renderSpeakerPicker();
}

function hintFor(status) {
  if (ENDED.has(status)) return 'The chat has ended: start a new one to go on.';
  if (status === 'running') return 'The agents are working; you can send when the run waits for you.';
  if (status === 'interrupted') return 'The run stopped on an error: Continue retries the step that failed.';
  return '';
}

function renderSpeakerPicker() {
  const show = chat.status === 'waiting_for_speaker' && chat.candidates.length > 0;
  el.speakerPicker.hidden = !show;
  const buttons = el.speakerPicker.querySelector('.speaker-buttons');
  clear(buttons);
  if (!show) return;
  for (const candidate of chat.candidates) {
    buttons.append(h('button', {
      type: 'button',
      class: 'button small',
      text: candidate === 'user' ? 'Me (user)' : candidate,
      on: { click: () => { if (!chat.session.send({ type: 'select_speaker', agent: candidate })) toasts.show('Not connected', 'Try again once the console is live.', { kind: 'error' }); } },
    }));
  }
}

function showUsage() {
  const parts = [chat.id && `chat ${chat.id.slice(0, 8)}`];
  if (chat.usage.prompt || chat.usage.completion) parts.push(`${chat.usage.prompt + chat.usage.completion} tokens`);
  el.chatMeta.textContent = parts.filter(Boolean).join(' · ');
}

function onEvent(event, { resent } = {}) {
  const live = event.seq === undefined || event.seq > chat.historyUntil;
  switch (event.type) {
    case 'context_changed':
      context.apply(event, { live });
      return;
    case 'usage':
      chat.usage.prompt += event.prompt_tokens || 0;
      chat.usage.completion += event.completion_tokens || 0;
      showUsage();
      return;
    case 'run_status':
      setStatus(event.status);
      if (ENDED.has(event.status)) refreshChats();
      break;
    case 'speaker_request':
      chat.candidates = event.candidates || [];
      renderSpeakerPicker();
      break;
    case 'ui_request':
      chat.session.shownRequests.add(event.request_id);
      if (resent) { transcript.apply(event, { live: true }); return; }
      break;
    case 'ui_response':
      chat.session.shownRequests.delete(event.request_id);
      break;
    default:
      break;
  }
  transcript.apply(event, { live });
}

function closeChat() {
  if (chat.session) chat.session.stop();
  Object.assign(chat, { id: null, workflow: null, status: null, session: null, historyUntil: 0, usage: { prompt: 0, completion: 0 }, candidates: [], connection: 'idle' });
  transcript.reset();
  ui.reset();
  el.artifactPanel.hidden = true;
  context.reset(null);
}

async function openChat(chatId) {
  if (chat.id === chatId) return;
  closeChat();
  chat.id = chatId;
  el.chatTitle.textContent = 'Chat';
  showUsage();
  setStatus(null);
  context.reset(chatId);
  if (window.location.hash !== `#chat=${chatId}`) history.replaceState(null, '', `#chat=${chatId}`);
  markOpenChat();
  try {
    const record = await api('GET', `/api/chats/${encodeURIComponent(chatId)}`);
    if (chat.id !== chatId) return;
    chat.workflow = record.workflow;
    el.chatTitle.textContent = record.workflow;
    ui.setWorkflow(record.workflow);
    transcript.setVisualAgents((workflows.get(record.workflow) || {}).visual_agents);
    showUsage();
  } catch (err) {
    if (err.code === 'CHAT_NOT_FOUND') {
      toasts.show('No such chat', err.message, { kind: 'error' });
      closeChat();
      history.replaceState(null, '', window.location.pathname);
      setStatus(null);
      el.chatTitle.textContent = 'No chat open';
      return;
    }
    // The server may be restarting: the socket retries and hello names the workflow.
  }
  const session = new ChatSession(chatId, {
    hello: (hello) => {
      chat.historyUntil = hello.last_seq;
      if (!chat.workflow) {
        chat.workflow = hello.workflow;
        el.chatTitle.textContent = hello.workflow;
        ui.setWorkflow(hello.workflow);
        transcript.setVisualAgents((workflows.get(hello.workflow) || {}).visual_agents);
        showUsage();
      }
      setStatus(hello.status);
    },
    event: onEvent,
    delta: (event) => transcript.delta(event),
    reply: (error) => toasts.show(error.code, error.message, { kind: 'error' }),
    reload: onReload,
    fatal: (message) => {
      toasts.show('Incompatible server', message, { kind: 'error', sticky: true });
      transcript.apply({ type: 'error', ts: Date.now(), code: 'PROTOCOL', message }, { live: true });
    },
    state: (state, attempt) => {
      // Deltas that were in flight are lost with the socket; a resumed
      // run streams its reply again from the start.
      if (state === 'retrying') transcript.dropDrafts();
      chat.connection = state === 'retrying' ? `retrying:${attempt}` : state;
      showConnection();
    },
  });
  chat.session = session;
  session.start();
}

// ---------------------------------------------------------------- chats list

function markOpenChat() {
  for (const item of el.chatList.querySelectorAll('button[data-chat]')) {
    if (item.dataset.chat === chat.id) item.setAttribute('aria-current', 'true');
    else item.removeAttribute('aria-current');
  }
}

async function refreshChats() {
  let chats;
  try {
    chats = ((await api('GET', '/api/chats')) || {}).chats || [];
  } catch (err) {
    clear(el.chatList).append(h('li', { class: 'field-error', text: err.message }));
    return;
  }
  clear(el.chatList);
  if (!chats.length) el.chatList.append(h('li', { class: 'empty', text: 'No chats yet.' }));
  for (const record of chats.slice(0, MAX_CHATS_LISTED)) {
    el.chatList.append(h('li', {},
      h('button', {
        type: 'button',
        class: 'chat-item',
        dataset: { chat: record.chat_id, status: record.status },
        on: { click: () => { openChat(record.chat_id); closeDrawers(); } },
      },
      h('span', { class: 'chat-item-title', text: record.workflow }),
      h('span', { class: `badge badge-${record.status}`, text: record.status.replace('_', ' ') }),
      h('span', { class: 'chat-item-meta', text: `${dateTime(record.created_at)} · ${record.chat_id.slice(0, 8)}` }))));
  }
  markOpenChat();
}

// ---------------------------------------------------------------- drawers

function openDrawer(drawer) {
  closeDrawers();
  drawer.classList.add('open');
  el.scrim.hidden = false;
  const button = drawer === el.nav ? $('open-nav') : $('open-inspector');
  button.setAttribute('aria-expanded', 'true');
  const focusable = drawer.querySelector('button, select, input, textarea, summary');
  if (focusable) focusable.focus();
}

function closeDrawers() {
  for (const drawer of [el.nav, el.inspector]) drawer.classList.remove('open');
  $('open-nav').setAttribute('aria-expanded', 'false');
  $('open-inspector').setAttribute('aria-expanded', 'false');
  el.scrim.hidden = true;
}

// ---------------------------------------------------------------- wiring

/** POST /api/chats: the owner set in the settings; without a key, the defaults; with one, what the key fixes. */
function newChatBody(workflow) {
  const body = { workflow };
  const set = owner();
  for (const field of ['app_id', 'user_id']) {
    const value = set[field] || (apiKey() ? '' : DEFAULT_OWNER[field]);
    if (value) body[field] = value;
  }
  return body;
}

el.newChat.addEventListener('submit', async (e) => {
  e.preventDefault();
  const workflow = el.workflowSelect.value;
  if (!workflow) return;
  const button = $('new-chat');
  button.disabled = true;
  try {
    const record = await api('POST', '/api/chats', newChatBody(workflow));
    await openChat(record.chat_id);
    refreshChats();
    closeDrawers();
    el.input.focus();
  } catch (err) {
    toasts.show(`Could not start a ${workflow} chat`, err.message, { kind: 'error' });
  } finally {
    button.disabled = false;
  }
});

el.composer.addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = el.input.value.trim();
  if (!text || !chat.id || el.send.disabled) return;
  el.send.disabled = true;
  try {
    await api('POST', `/api/chats/${chat.id}/messages`, { text });
    el.input.value = '';
    el.hint.textContent = '';
  } catch (err) {
    // Input is not queued: keep the text for when the run waits for it.
    el.hint.textContent = `${err.code}: ${err.message}`;
    el.send.disabled = !TAKES_INPUT.has(chat.status);
  }
});

el.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    el.composer.requestSubmit();
  }
});

el.continueChat.addEventListener('click', async () => {
  try { await api('POST', `/api/chats/${chat.id}/continue`); } catch (err) { toasts.show('Continue failed', err.message, { kind: 'error' }); }
});

el.endChat.addEventListener('click', async () => {
  if (!window.confirm('End this chat? Its run stops and open requests are cancelled.')) return;
  try { await api('POST', `/api/chats/${chat.id}/end`); } catch (err) { toasts.show('End failed', err.message, { kind: 'error' }); }
});

$('refresh-workflows').addEventListener('click', () => workflows.refresh());
$('refresh-chats').addEventListener('click', () => refreshChats());
$('refresh-plugins').addEventListener('click', () => plugins.refresh());
$('open-nav').addEventListener('click', () => (el.nav.classList.contains('open') ? closeDrawers() : openDrawer(el.nav)));
$('open-inspector').addEventListener('click', () => (el.inspector.classList.contains('open') ? closeDrawers() : openDrawer(el.inspector)));
el.scrim.addEventListener('click', closeDrawers);
for (const button of document.querySelectorAll('[data-close-drawer]')) button.addEventListener('click', closeDrawers);
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDrawers(); });

$('open-settings').addEventListener('click', () => {
  el.apiKeyInput.value = apiKey();
  $('app-id').value = owner().app_id;
  $('user-id').value = owner().user_id;
  el.settings.returnValue = '';
  el.settings.showModal();
});
$('clear-api-key').addEventListener('click', () => { el.apiKeyInput.value = ''; });
el.settings.addEventListener('close', () => {
  if (el.settings.returnValue !== 'save') return;
  setApiKey(el.apiKeyInput.value.trim());
  setOwner({ app_id: $('app-id').value.trim(), user_id: $('user-id').value.trim() });
  events.restart();
  if (chat.session) chat.session.socket.restart();
  workflows.refresh();
  refreshChats();
  toasts.show('API key saved', apiKey() ? 'Requests now carry the key.' : 'Requests carry no key.');
});

window.addEventListener('hashchange', () => {
  const match = /^#chat=([0-9a-f]{32})$/.exec(window.location.hash);
  if (match) openChat(match[1]);
});

// ---------------------------------------------------------------- start

setStatus(null);
plugins.refresh();
workflows.refresh();
refreshChats();
events.start();
const initial = /^#chat=([0-9a-f]{32})$/.exec(window.location.hash);
if (initial) openChat(initial[1]);
