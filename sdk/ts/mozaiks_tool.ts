// A thin, typed helper for writing mozaiks tools in TypeScript. The build
// type-checks with tsc (strict), emits JavaScript and runs componentize-qjs
// (QuickJS). The WIT files in `wit/` are the contract, and `types/` holds
// their TypeScript declarations, generated from them; this module only makes
// them less awkward to use:
//
// - `Toolbox` declares functions with their description and JSON Schema and
//   makes the `tool` export the component offers;
// - `ToolError` is an error a function throws to fail on purpose (the agent
//   sees it as the tool's result);
// - a function gets a `Call` with the chat's context (JSON values in and
//   out), the UI (`ask`, `notify`), the log, the plugin's secrets, the app's
//   documents (`data`, with `DataError`) and the chat's messages.
//
// Every call runs in a fresh instance: module-level state does not survive
// from one call to the next. Keep state in the context.

import * as chat from 'mozaiks:plugin/chat@0.1.2';
import * as context from 'mozaiks:plugin/context@0.1.2';
import * as data from 'mozaiks:plugin/data@0.1.2';
import * as invocation from 'mozaiks:plugin/invocation@0.1.2';
import * as wlog from 'mozaiks:plugin/log@0.1.2';
import * as secrets from 'mozaiks:plugin/secrets@0.1.2';
import type { CallInfo, FunctionSpec } from 'mozaiks:plugin/types@0.1.2';
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
let seeded: number[] | null = null;

function mix32(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// The state of a xoshiro128** generator: four FNV-1a hashes of `text` with
// different offsets, each mixed.
function seed(text: string): number[] {
  const s = [0x811c9dc5, 0x050c5d1f, 0x2f8e6c3b, 0x6a09e667];
  for (let i = 0; i < text.length; i++) {
    for (let j = 0; j < 4; j++) s[j] = Math.imul(s[j] ^ text.charCodeAt(i), 0x01000193);
  }
  for (let j = 0; j < 4; j++) s[j] = mix32(s[j] ^ j);
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  return s;
}

function next(s: number[]): number {
  const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));
  const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
  const t = s[1] << 9;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11);
  return result;
}

Math.random = (): number => {
  // Outside a call (the module's top level, run once at build time) the
  // engine's own generator.
  if (!drawing) return snapshotRandom();
  if (seeded === null) seeded = seed(`${invocation.idempotencyKey()}|${invocation.attempt()}|${Date.now()}`);
  // 53 random bits, as a double in [0, 1).
  return ((next(seeded) >>> 5) * 67108864 + (next(seeded) >>> 6)) / 9007199254740992;
};

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** The kinds of `tool-error` in the contract. */
export type ToolErrorKind = 'unknown-function' | 'invalid-arguments' | 'denied' | 'cancelled' | 'failed';

/** A failure the tool chose; the agent sees it as the tool's result. */
export class ToolError extends Error {
  constructor(readonly kind: ToolErrorKind, message: string) {
    super(message);
  }
  static unknownFunction(message: string): ToolError { return new ToolError('unknown-function', message); }
  static invalidArguments(message: string): ToolError { return new ToolError('invalid-arguments', message); }
  static denied(message: string): ToolError { return new ToolError('denied', message); }
  static cancelled(message: string): ToolError { return new ToolError('cancelled', message); }
  static failed(message: string): ToolError { return new ToolError('failed', message); }
}

// How the bindings report a WIT error: a thrown value with a `payload`
// ({tag, val}), or the variant itself.
function variantOf(thrown: unknown): { tag?: string; val?: unknown } {
  const value = thrown as { payload?: unknown } | undefined;
  const variant = value && value.payload !== undefined ? value.payload : thrown;
  return (variant ?? {}) as { tag?: string; val?: unknown };
}

/** The chat's context variables, as JSON values. */
export class Context {
  get<T extends Json>(key: string, fallback: T): T;
  get(key: string): Json | undefined;
  get(key: string, fallback?: Json): Json | undefined {
    // componentize-qjs gives `null` for a missing option (the generated
    // declarations say `undefined`): both mean "not set".
    const text: string | undefined | null = context.get(key);
    return text === undefined || text === null ? fallback : (JSON.parse(text) as Json);
  }
  set(key: string, value: Json): void {
    try {
      context.set(key, JSON.stringify(value));
    } catch (thrown) {
      throw ToolError.failed(`context variable \`${key}\` not set: ${String(variantOf(thrown).val)}`);
    }
  }
  remove(key: string): boolean { return context.remove(key); }
  entries(): Record<string, Json> {
    return Object.fromEntries(context.entries().map(([key, text]) => [key, JSON.parse(text) as Json]));
  }
}

/** Where a client shows a UI component. */
export type Display = 'inline' | 'artifact';

/** The chat's user interface. */
export class Ui {
  /**
   * Shows `component` with `payload` and waits for the user's answer.
   * Throws ToolError cancelled when nobody answers in time or the request
   * is cancelled, failed when the chat has no UI or the request is invalid.
   */
  ask(component: string, payload: Json, options: { display?: Display; timeoutMs?: number } = {}): Json {
    const request = {
      component,
      payload: JSON.stringify(payload),
      display: options.display ?? 'inline',
      timeoutMs: options.timeoutMs ?? 300000,
    };
    try {
      return JSON.parse(ui.ask(request)) as Json;
    } catch (thrown) {
      const error = variantOf(thrown);
      if (error.tag === 'timeout') throw ToolError.cancelled(`nobody answered ${component} in time`);
      if (error.tag === 'cancelled') throw ToolError.cancelled(`the request for ${component} was cancelled`);
      throw ToolError.failed(`cannot ask through ${component}: ${String(error.val ?? thrown)}`);
    }
  }
  /** Shows `component` without waiting for an answer. */
  notify(component: string, payload: Json, options: { display?: Display } = {}): void {
    ui.notify(component, JSON.stringify(payload), options.display ?? 'inline');
  }
}

// componentize-qjs passes a WIT u64 as a number (exact up to 2^53) and an
// absent option as null, where jco's declarations in `types/` say bigint and
// undefined: versions and sequence numbers cross through these two, and
// options are read with `?? null`.
function toU64(n: number): bigint { return n as unknown as bigint; }
function fromU64(n: bigint | number): number { return Number(n); }

/**
 * The plugin's secrets: those its `plugin.toml` declares (`[secrets.NAME]`).
 * The host replaces every value it handed out with `[redacted secret NAME]`
 * in the call's logs, stdout, stderr, result and error message.
 */
export class Secrets {
  /**
   * The secret `name`; null when it is optional and has no value. Throws
   * ToolError failed (with the host's reason) when the manifest does not
   * declare it, or it is required and has none.
   */
  get(name: string): string | null {
    try {
      return secrets.get(name) ?? null;
    } catch (thrown) {
      const reason: unknown = variantOf(thrown);
      throw ToolError.failed(typeof reason === 'string' ? reason : String(thrown));
    }
  }
  /** The secret `name`, which must have a value (else ToolError failed). */
  require(name: string): string {
    const value = this.get(name);
    if (value === null) throw ToolError.failed(`the secret \`${name}\` has no value`);
    return value;
  }
}

/** Whose documents a data function acts on. */
export type Scope = 'app' | 'user';

/**
 * One stored document. (Types here are aliases, not interfaces, so that a
 * document or a message is itself a `Json` a function may return.)
 */
export type Document = {
  /** Its id inside its collection. */
  id: string;
  /** Raised by one on every write; the first write makes version 1. */
  version: number;
  /** The document. */
  body: JsonObject;
};

/** The kinds of `data-error` in the contract. */
export type DataErrorKind = 'conflict' | 'too-large' | 'quota-exceeded' | 'invalid';

/**
 * Why a data function failed. `conflict`: the document is not at the
 * expected version; `found` is its version now (null: it does not exist).
 * `too-large`, `quota-exceeded`: the server's limits. `invalid`: an argument
 * was refused; the message says which. Thrown out of a function, `invalid`
 * becomes a ToolError invalid-arguments and the others failed, with the same
 * message.
 */
export class DataError extends Error {
  constructor(readonly kind: DataErrorKind, message: string, readonly found: number | null = null) {
    super(message);
  }
}

// A data function's WIT error as a DataError.
function dataError(thrown: unknown): unknown {
  const error = variantOf(thrown);
  switch (error.tag) {
    case 'conflict': {
      const found = typeof error.val === 'number' || typeof error.val === 'bigint' ? Number(error.val) : null;
      return new DataError('conflict', found === null
        ? 'version conflict: the document does not exist'
        : `version conflict: the document is at version ${found}`, found);
    }
    case 'too-large':
    case 'quota-exceeded':
    case 'invalid':
      return new DataError(error.tag, String(error.val));
    default:
      return thrown;
  }
}

function dataCall<T>(f: () => T): T {
  try {
    return f();
  } catch (thrown) {
    throw dataError(thrown);
  }
}

function documentOf(doc: data.Document): Document {
  return { id: doc.id, version: fromU64(doc.version), body: JSON.parse(doc.body) as JsonObject };
}

/**
 * Documents of the calling chat's app: JSON objects named by a collection
 * and an id, with a version the host raises on every write. `scope` is 'app'
 * (the app's documents, shared by its users) or 'user' (the chat's user's,
 * inside the app); the host decides which app and user from the calling
 * chat. Every method throws DataError when the host refuses.
 */
export class Data {
  /** The document `id` of `collection`, or null. */
  get(scope: Scope, collection: string, id: string): Document | null {
    const doc = dataCall(() => data.get(scope, collection, id)) ?? null;
    return doc === null ? null : documentOf(doc);
  }
  /**
   * Writes `body` as the document `id` of `collection` and returns its new
   * version. With `expectedVersion`, only if the document is at that version
   * now (0: only if it does not exist yet); otherwise DataError conflict.
   */
  put(scope: Scope, collection: string, id: string, body: JsonObject, options: { expectedVersion?: number } = {}): number {
    const expected = options.expectedVersion === undefined ? undefined : toU64(options.expectedVersion);
    return fromU64(dataCall(() => data.put(scope, collection, id, JSON.stringify(body), expected)));
  }
  /**
   * Removes the document; true if it existed. With `expectedVersion`, only
   * if it is at that version now.
   */
  remove(scope: Scope, collection: string, id: string, options: { expectedVersion?: number } = {}): boolean {
    const expected = options.expectedVersion === undefined ? undefined : toU64(options.expectedVersion);
    return dataCall(() => data.remove(scope, collection, id, expected));
  }
  /**
   * The documents of `collection`, by id, whose field at each dotted path of
   * `filters` equals its value (`{ 'customer.id': 7 }`); only those with an
   * id after `after` (the last of the previous page); at most `limit` (the
   * host caps it at 100).
   */
  query(scope: Scope, collection: string, filters: JsonObject = {}, options: { after?: string; limit?: number } = {}): Document[] {
    const conditions = Object.entries(filters).map(([path, value]) => ({ path, value: JSON.stringify(value) }));
    const docs = dataCall(() => data.query(scope, collection, conditions, options.after, options.limit ?? 100));
    return docs.map(documentOf);
  }
}

/** One message of the chat. */
export type Message = {
  /** Its position in the chat's event log. */
  seq: number;
  /** Who said it: a person or an agent. */
  role: 'user' | 'agent';
  /** The agent that said it; null for a person's message. */
  agent: string | null;
  /** The text (for a structured output, its JSON text; cut by the host over 64 KiB, with a note). */
  content: string;
};

/** What the calling chat said so far. Read-only. */
export class Chat {
  /**
   * The last `limit` messages of the chat (at most 100), oldest first. Tool
   * calls and their results are not messages.
   */
  recentMessages(limit: number): Message[] {
    return chat.recentMessages(limit).map((m) => ({
      seq: fromU64(m.seq),
      role: m.role === 'user' ? 'user' : 'agent',
      agent: m.agent ?? null,
      content: m.content,
    }));
  }
  /**
   * The latest structured output of `agent` in this chat (validated against
   * its model), as a JSON value; null if it produced none.
   */
  structuredOutput(agent: string): Json {
    const text = chat.structuredOutput(agent) ?? null;
    return text === null ? null : (JSON.parse(text) as Json);
  }
}

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

function write(level: Level, message: string, fields: Record<string, Json> = {}): void {
  const pairs: Array<[string, string]> = Object.entries(fields).map(([k, v]) => [
    k,
    typeof v === 'string' ? v : JSON.stringify(v),
  ]);
  wlog.log(level, message, pairs);
}

/** Structured log records, tagged by the host with plugin, function and chat. */
export const log = {
  trace: (message: string, fields?: Record<string, Json>) => write('trace', message, fields),
  debug: (message: string, fields?: Record<string, Json>) => write('debug', message, fields),
  info: (message: string, fields?: Record<string, Json>) => write('info', message, fields),
  warn: (message: string, fields?: Record<string, Json>) => write('warn', message, fields),
  error: (message: string, fields?: Record<string, Json>) => write('error', message, fields),
};

/** What a function gets besides its arguments: who called, and the chat. */
export interface Call {
  readonly info: CallInfo;
  readonly context: Context;
  readonly ui: Ui;
  readonly log: typeof log;
  readonly secrets: Secrets;
  readonly data: Data;
  readonly chat: Chat;
  /**
   * The key of this tool call: the same on every attempt of it, different
   * for every other call. A call runs at least once (again, from the start,
   * when a server stopped during it); record the key with the call's side
   * effect and skip an effect already recorded to make it exactly once.
   */
  idempotencyKey(): string;
  /** Which attempt of its tool call this is: 1 the first time. */
  attempt(): number;
}

/** A function of a tool: decoded arguments in, a JSON value out. */
export type ToolFunction<A> = (args: A, call: Call) => Json;

/** The functions a tool offers, each with a description and a JSON Schema. */
export class Toolbox {
  private readonly functions = new Map<
    string,
    { description: string; parameters: Json; fn: ToolFunction<never> }
  >();

  /** Registers `fn`; its arguments satisfy `parameters` (the host checks). */
  function<A>(name: string, description: string, parameters: Json, fn: ToolFunction<A>): this {
    if (this.functions.has(name)) throw new Error(`function ${name} is declared twice`);
    this.functions.set(name, { description, parameters, fn: fn as ToolFunction<never> });
    return this;
  }

  /** The object to export as the component's `tool` interface. */
  export(): { describe(): FunctionSpec[]; call(name: string, argumentsJson: string, info: CallInfo): string } {
    const functions = this.functions;
    return {
      describe(): FunctionSpec[] {
        return [...functions].map(([name, f]) => ({
          name,
          description: f.description,
          parameters: JSON.stringify(f.parameters),
        }));
      },
      call(name: string, argumentsJson: string, info: CallInfo): string {
        const entry = functions.get(name);
        try {
          drawing = true;
          seeded = null;
          if (!entry) {
            throw ToolError.unknownFunction(`no function ${name}; this tool offers ${[...functions.keys()].join(', ')}`);
          }
          const call: Call = {
            info, context: new Context(), ui: new Ui(), log,
            secrets: new Secrets(), data: new Data(), chat: new Chat(),
            idempotencyKey: () => invocation.idempotencyKey(),
            attempt: () => invocation.attempt(),
          };
          return JSON.stringify(entry.fn(JSON.parse(argumentsJson) as never, call));
        } catch (error) {
          if (error instanceof ToolError) throw { tag: error.kind, val: error.message };
          if (error instanceof DataError) {
            throw { tag: error.kind === 'invalid' ? 'invalid-arguments' : 'failed', val: error.message };
          }
          throw error;
        }
      },
    };
  }
}
