// A JSON WebSocket that reconnects by itself with backoff, and the chat
// session on top of it, which applies docs/protocol.md's reconnect rules:
// reconnect with ?after=lastSeq, check hello.protocol, drop duplicates by
// seq, show re-sent open ui_requests, keep text_delta drafts apart.

import { socketUrl } from './api.js';

/** First retry delay; doubles per failed attempt up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 250;
/** Longest wait between two attempts: a restarted server is found within it. */
const MAX_BACKOFF_MS = 4000;
/** A socket silent this long gets a ping, so a dead connection shows up. */
const PING_INTERVAL_MS = 25000;

export class ReconnectingSocket {
  /**
   * url(): the URL to connect to (called per attempt).
   * onMessage(value), onState(state, attempt): state is `connecting`,
   * `open`, `retrying` or `closed`.
   */
  constructor({ url, onMessage, onState = () => {} }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.onState('closed', 0);
  }

  /** Sends a JSON message; false when the socket is not open. */
  send(value) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(value));
    return true;
  }

  /** Drops the connection and connects again at once (e.g. a new key). */
  restart() {
    if (this.stopped) return;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    this.attempt = 0;
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.onState(this.attempt === 0 ? 'connecting' : 'retrying', this.attempt);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.onState('open', 0);
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: 'ping' }), PING_INTERVAL_MS);
    };
    ws.onmessage = (message) => {
      if (typeof message.data !== 'string') return;
      let value;
      try { value = JSON.parse(message.data); } catch { return; }
      this.onMessage(value);
    };
    ws.onclose = () => {
      clearInterval(this.pinger);
      if (this.ws === ws) this.ws = null;
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.attempt += 1;
    const base = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (this.attempt - 1));
    const delay = base / 2 + Math.random() * (base / 2);
    this.onState('retrying', this.attempt);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}

/** The protocol version this page speaks (hello.protocol). */
export const PROTOCOL = 1;

/**
 * One chat's socket. Calls handlers.hello(hello), handlers.event(event)
 * for every event to apply (in seq order, each once), handlers.delta(event)
 * for text_delta, handlers.reply(error) for per-client replies,
 * handlers.reload(frame) for server-wide reload frames and
 * handlers.state(state, attempt) for the connection.
 */
export class ChatSession {
  constructor(chatId, handlers) {
    this.chatId = chatId;
    this.handlers = handlers;
    this.lastSeq = 0;
    /** request_id → true while the page shows that request as open. */
    this.shownRequests = new Set();
    this.socket = new ReconnectingSocket({
      url: () => socketUrl(`/api/chats/${encodeURIComponent(chatId)}/ws`, { after: this.lastSeq }),
      onMessage: (value) => this.receive(value),
      onState: (state, attempt) => handlers.state(state, attempt),
    });
  }

  start() { this.socket.start(); }

  stop() { this.socket.stop(); }

  send(value) { return this.socket.send(value); }

  receive(value) {
    const h = this.handlers;
    if (value.type === 'hello') {
      if (value.protocol !== PROTOCOL) {
        this.stop();
        h.fatal(`the server speaks protocol ${value.protocol}; this page speaks ${PROTOCOL}: reload the page`);
        return;
      }
      h.hello(value);
      return;
    }
    if (value.type === 'reload') { h.reload(value); return; }
    if (value.type === 'pong') return;
    if (value.seq === undefined || value.seq === null) {
      if (value.type === 'text_delta') h.delta(value);
      else if (value.chat_id) h.event(value); // STORE_UNAVAILABLE: an event without seq
      else if (value.type === 'error') h.reply(value);
      return;
    }
    if (value.seq <= this.lastSeq) {
      // A duplicate, except an open request re-sent after a reconnect.
      if (value.type === 'ui_request' && !this.shownRequests.has(value.request_id)) h.event(value, { resent: true });
      return;
    }
    this.lastSeq = value.seq;
    h.event(value, { resent: false });
  }
}
