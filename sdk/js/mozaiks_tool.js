// A thin helper for writing mozaiks tools in JavaScript with componentize-qjs
// (QuickJS). The WIT files in `wit/` are the contract; this module only makes
// them less awkward to use:
//
// - `Toolbox` declares functions with their description and JSON Schema and
//   makes the `tool` export the component offers;
// - `ToolError` is an error a function throws to fail on purpose (the agent
//   sees it as the tool's result);
// - a function gets a `call` with the chat's context (JSON values in and
//   out), the UI (`ask`, `notify`), the log, the plugin's secrets, the app's
//   documents (`data`, with `DataError`) and the chat's messages.
//
// Every call runs in a fresh instance: module-level state does not survive
// from one call to the next. Keep state in the context.

import * as wchat from 'mozaiks:plugin/chat@0.1.2';
import * as context from 'mozaiks:plugin/context@0.1.2';
import * as wdata from 'mozaiks:plugin/data@0.1.2';
import * as invocation from 'mozaiks:plugin/invocation@0.1.2';
import * as wlog from 'mozaiks:plugin/log@0.1.2';
import * as wsecrets from 'mozaiks:plugin/secrets@0.1.2';
import * as ui from 'mozaiks:plugin/ui@0.1.2';

// componentize-qjs snapshots QuickJS once its start-up ran, at build time, so
// the state of `Math.random` is in the snapshot and every call's fresh
// instance would draw the same numbers. Within a call, `Math.random` is
// therefore a generator seeded, at its first draw, from what differs between
// calls: the call's idempotency key (different for every tool call), its
// attempt and the clock. A call that draws nothing pays nothing. Like any
// `Math.random`, it is not for secrets.
const snapshotRandom = Math.random;
let drawing = false;
let seeded = null;

function mix32(h) {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// The state of a xoshiro128** generator: four FNV-1a hashes of `text` with
// different offsets, each mixed.
function seed(text) {
  const s = [0x811c9dc5, 0x050c5d1f, 0x2f8e6c3b, 0x6a09e667];
  for (let i = 0; i < text.length; i++) {
    for (let j = 0; j < 4; j++) s[j] = Math.imul(s[j] ^ text.charCodeAt(i), 0x01000193);
  }
  for (let j = 0; j < 4; j++) s[j] = mix32(s[j] ^ j);
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  return s;
}

function next(s) {
  const rotl = (x, k) => (x << k) | (x >>> (32 - k));
  const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
  const t = s[1] << 9;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11);
  return result;
}

Math.random = () => {
  // Outside a call (the module's top level, run once at build time) the
  // engine's own generator.
  if (!drawing) return snapshotRandom();
  if (seeded === null) seeded = seed(`${invocation.idempotencyKey()}|${invocation.attempt()}|${Date.now()}`);
  // 53 random bits, as a double in [0, 1).
  return ((next(seeded) >>> 5) * 67108864 + (next(seeded) >>> 6)) / 9007199254740992;
};

const KINDS = {
  unknownFunction: 'unknown-function',
  invalidArguments: 'invalid-arguments',
  denied: 'denied',
  cancelled: 'cancelled',
  failed: 'failed',
};

/** A failure the tool chose; the agent sees it as the tool's result. */
export class ToolError extends Error {
  constructor(kind, message) {
    if (!Object.values(KINDS).includes(kind)) {
      throw new Error(`unknown ToolError kind ${kind}; one of ${Object.values(KINDS).join(', ')}`);
    }
    super(message);
    this.kind = kind;
  }
  static unknownFunction(message) { return new ToolError(KINDS.unknownFunction, message); }
  static invalidArguments(message) { return new ToolError(KINDS.invalidArguments, message); }
  static denied(message) { return new ToolError(KINDS.denied, message); }
  static cancelled(message) { return new ToolError(KINDS.cancelled, message); }
  static failed(message) { return new ToolError(KINDS.failed, message); }
}

// How the bindings report a WIT error: a thrown value with a `payload`
// ({tag, val}) in componentize-qjs, or the variant itself.
function variantOf(thrown) {
  return thrown && thrown.payload !== undefined ? thrown.payload : thrown;
}

/** The chat's context variables, as JSON values. */
export const ctx = {
  get(key, fallback = undefined) {
    const text = context.get(key);
    return text === undefined || text === null ? fallback : JSON.parse(text);
  },
  set(key, value) {
    try {
      context.set(key, JSON.stringify(value));
    } catch (thrown) {
      const error = variantOf(thrown);
      throw ToolError.failed(`context variable \`${key}\` not set: ${error && error.val !== undefined ? error.val : error}`);
    }
  },
  remove(key) { return context.remove(key); },
  entries() {
    return Object.fromEntries(context.entries().map(([key, text]) => [key, JSON.parse(text)]));
  },
};

/** The chat's user interface. */
export const userInterface = {
  /**
   * Shows `component` with `payload` and waits for the user's answer (JSON).
   * Throws ToolError cancelled when nobody answers in time or the request is
   * cancelled, failed when the chat has no UI or the request is invalid.
   */
  ask(component, payload, { display = 'inline', timeoutMs = 300000 } = {}) {
    try {
      return JSON.parse(ui.ask({ component, payload: JSON.stringify(payload), display, timeoutMs }));
    } catch (thrown) {
      const error = variantOf(thrown) || {};
      if (error.tag === 'timeout') throw ToolError.cancelled(`nobody answered ${component} in time`);
      if (error.tag === 'cancelled') throw ToolError.cancelled(`the request for ${component} was cancelled`);
      throw ToolError.failed(`cannot ask through ${component}: ${error.val !== undefined ? error.val : String(thrown)}`);
    }
  },
  /** Shows `component` without waiting for an answer. */
  notify(component, payload, { display = 'inline' } = {}) {
    ui.notify(component, JSON.stringify(payload), display);
  },
};

/**
 * The plugin's secrets: those its `plugin.toml` declares (`[secrets.NAME]`).
 * The host replaces every value it handed out with `[redacted secret NAME]`
 * in the call's logs, stdout, stderr, result and error message.
 */
export const secrets = {
  /**
   * The secret `name`; null when it is optional and has no value. Throws
   * ToolError failed (with the host's reason) when the manifest does not
   * declare it, or it is required and has none.
   */
  get(name) {
    try {
      return wsecrets.get(name) ?? null;
    } catch (thrown) {
      const reason = variantOf(thrown);
      throw ToolError.failed(typeof reason === 'string' ? reason : String(thrown));
    }
  },
  /** The secret `name`, which must have a value (else ToolError failed). */
  require(name) {
    const value = secrets.get(name);
    if (value === null) throw ToolError.failed(`the secret \`${name}\` has no value`);
    return value;
  },
};

/**
 * Why a data function failed. `kind` is `conflict` (the document is not at
 * the expected version; `found` is its version now, null when it does not
 * exist), `too-large` or `quota-exceeded` (the server's limits) or `invalid`
 * (an argument was refused; the message says which). Thrown out of a
 * function, `invalid` becomes a ToolError invalid-arguments and the others
 * failed, with the same message.
 */
export class DataError extends Error {
  constructor(kind, message, found = null) {
    super(message);
    this.kind = kind;
    this.found = found;
  }
}

// A data function's WIT error as a DataError.
function dataError(thrown) {
  const error = variantOf(thrown) || {};
  if (error.tag === 'conflict') {
    const found = error.val ?? null;
    return new DataError('conflict', found === null
      ? 'version conflict: the document does not exist'
      : `version conflict: the document is at version ${found}`, found);
  }
  if (['too-large', 'quota-exceeded', 'invalid'].includes(error.tag)) return new DataError(error.tag, String(error.val));
  return thrown;
}

function dataCall(f) {
  try {
    return f();
  } catch (thrown) {
    throw dataError(thrown);
  }
}

function scopeOf(scope) {
  if (scope !== 'app' && scope !== 'user') throw new Error(`scope must be 'app' or 'user', not ${scope}`);
  return scope;
}

function documentOf(doc) {
  return { id: doc.id, version: Number(doc.version), body: JSON.parse(doc.body) };
}

/**
 * Documents of the calling chat's app: JSON objects named by a collection and
 * an id, each `{ id, version, body }` with a version the host raises on every
 * write. `scope` is 'app' (the app's documents, shared by its users) or
 * 'user' (the chat's user's, inside the app); the host decides which app and
 * user from the calling chat. Every function throws DataError when the host
 * refuses.
 */
export const data = {
  /** The document `id` of `collection`, or null. */
  get(scope, collection, id) {
    const s = scopeOf(scope);
    const doc = dataCall(() => wdata.get(s, collection, id));
    return doc === undefined || doc === null ? null : documentOf(doc);
  },
  /**
   * Writes `body` (a JSON object) as the document `id` of `collection` and
   * returns its new version. With `expectedVersion`, only if the document is
   * at that version now (0: only if it does not exist yet); otherwise
   * DataError conflict.
   */
  put(scope, collection, id, body, { expectedVersion = null } = {}) {
    const s = scopeOf(scope);
    return dataCall(() => wdata.put(s, collection, id, JSON.stringify(body), expectedVersion));
  },
  /**
   * Removes the document; true if it existed. With `expectedVersion`, only if
   * it is at that version now.
   */
  remove(scope, collection, id, { expectedVersion = null } = {}) {
    const s = scopeOf(scope);
    return dataCall(() => wdata.remove(s, collection, id, expectedVersion));
  },
  /**
   * The documents of `collection`, by id, whose field at each dotted path of
   * `filters` equals its value (`{ 'customer.id': 7 }`); only those with an
   * id after `after` (the last of the previous page); at most `limit` (the
   * host caps it at 100).
   */
  query(scope, collection, filters = {}, { after = null, limit = 100 } = {}) {
    const s = scopeOf(scope);
    const conditions = Object.entries(filters ?? {}).map(([path, value]) => ({ path, value: JSON.stringify(value) }));
    return dataCall(() => wdata.query(s, collection, conditions, after, limit)).map(documentOf);
  },
};

/** What the calling chat said so far. Read-only. */
export const chat = {
  /**
   * The last `limit` messages of the chat (at most 100), oldest first, each
   * `{ seq, role: 'user' | 'agent', agent (null for a person), content }`.
   * Tool calls and their results are not messages.
   */
  recentMessages(limit) {
    return wchat.recentMessages(limit).map((m) => ({
      seq: Number(m.seq), role: m.role === 'user' ? 'user' : 'agent', agent: m.agent ?? null, content: m.content,
    }));
  },
  /**
   * The latest structured output of `agent` in this chat (validated against
   * its model), as a JSON value; null if it produced none.
   */
  structuredOutput(agent) {
    const text = wchat.structuredOutput(agent);
    return text === undefined || text === null ? null : JSON.parse(text);
  },
};

function write(level, message, fields = {}) {
  const pairs = Object.entries(fields).map(([k, v]) => [String(k), typeof v === 'string' ? v : JSON.stringify(v)]);
  wlog.log(level, message, pairs);
}

/** Structured log records, tagged by the host with plugin, function and chat. */
export const log = {
  trace: (message, fields) => write('trace', message, fields),
  debug: (message, fields) => write('debug', message, fields),
  info: (message, fields) => write('info', message, fields),
  warn: (message, fields) => write('warn', message, fields),
  error: (message, fields) => write('error', message, fields),
};

/**
 * The key of this tool call: the same on every attempt of it, different for
 * every other call. A call runs at least once (again, from the start, when a
 * server stopped during it); record the key with the call's side effect and
 * skip an effect already recorded to make it exactly once.
 */
export function idempotencyKey() { return invocation.idempotencyKey(); }
/** Which attempt of its tool call this is: 1 the first time. */
export function attempt() { return invocation.attempt(); }
/**
 * The functions a tool offers, each with a description and a JSON Schema.
 *
 *     const toolbox = new Toolbox()
 *       .function('greet', 'Greets someone.', { type: 'object', ... }, (args, call) => ({ ... }));
 *     export const tool = toolbox.export();
 */
export class Toolbox {
  constructor() { this.functions = new Map(); }

  /** Registers `fn(args, call) -> JSON value`. */
  function(name, description, parameters, fn) {
    if (this.functions.has(name)) throw new Error(`function ${name} is declared twice`);
    this.functions.set(name, { description, parameters, fn });
    return this;
  }

  /** The object to export as the component's `tool` interface. */
  export() {
    const functions = this.functions;
    return {
      describe() {
        return [...functions].map(([name, f]) => ({
          name, description: f.description, parameters: JSON.stringify(f.parameters),
        }));
      },
      call(name, argumentsJson, info) {
        const entry = functions.get(name);
        try {
          drawing = true;
          seeded = null;
          if (!entry) throw ToolError.unknownFunction(`no function ${name}; this tool offers ${[...functions.keys()].join(', ')}`);
          const call = { info, context: ctx, ui: userInterface, log, secrets, data, chat, idempotencyKey, attempt };
          return JSON.stringify(entry.fn(JSON.parse(argumentsJson), call));
        } catch (error) {
          if (error instanceof ToolError) throw { tag: error.kind, val: error.message };
          if (error instanceof DataError) {
            throw { tag: error.kind === 'invalid' ? KINDS.invalidArguments : KINDS.failed, val: error.message };
          }
          throw error;
        }
      },
    };
  }
}
