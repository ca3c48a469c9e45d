/* A thin helper for writing mozaiks tools in C.
 *
 * The WIT files in wit/ are the contract; bindings/plugin.h is generated from
 * them by every `mozaiks tool build`. This header makes them less awkward:
 *
 * - MOZAIKS_TOOLBOX declares the tool's functions with their description
 *   and JSON Schema, and implements the component's `describe` and `call`;
 * - a function returns mozaiks_ok(json) or mozaiks_error(kind, ...): an
 *   error is the tool's own failure, and the agent sees it as the result;
 * - the chat's context (JSON text in and out), the UI (ask, notify) and the
 *   log, with plain NUL-terminated strings;
 * - a few JSON helpers for the flat objects tools usually get.
 *
 * Every string these functions return was malloc'd: free it. Every call
 * runs in a fresh instance, so globals start afresh on every call: keep
 * state in the context.
 */
#ifndef MOZAIKS_TOOL_H
#define MOZAIKS_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The kinds of a tool's own failure (the WIT's tool-error). */
typedef enum {
    MOZAIKS_UNKNOWN_FUNCTION,
    MOZAIKS_INVALID_ARGUMENTS,
    MOZAIKS_DENIED,
    MOZAIKS_CANCELLED,
    MOZAIKS_FAILED,
} mozaiks_error_kind;

/* What a function returns: `ok` with its result as JSON text, or an error
 * of `kind` with a message. `text` is malloc'd; the helper frees it. */
typedef struct {
    bool ok;
    mozaiks_error_kind kind;
    char *text;
} mozaiks_result;

/* Who is calling: the chat, its workflow, the agent and the LLM's id of
 * this call (the same id is in the chat's events). */
typedef struct {
    const char *chat_id;
    const char *workflow;
    const char *agent;
    const char *tool_call_id;
} mozaiks_call;

/* A function of the tool: `args` is its arguments, a JSON object as text
 * that the host has already checked against `parameters`. */
typedef mozaiks_result (*mozaiks_handler)(const char *args, const mozaiks_call *call);

/* One function the tool offers: its name (letters, digits, `_`, `-`), what
 * it does (the LLM reads it), the JSON Schema of its arguments, its code. */
typedef struct {
    const char *name;
    const char *description;
    const char *parameters;
    mozaiks_handler handler;
} mozaiks_function;

/* Declares the tool's functions, once per tool:
 *     MOZAIKS_TOOLBOX({"greet", "Greets someone.", SCHEMA, greet});
 * mozaiks_tool.c implements the component's `describe` and `call` on it. */
#define MOZAIKS_TOOLBOX(...)                                                   \
    const mozaiks_function mozaiks_toolbox[] = {__VA_ARGS__};                  \
    const size_t mozaiks_toolbox_len = sizeof(mozaiks_toolbox) / sizeof(mozaiks_toolbox[0])

extern const mozaiks_function mozaiks_toolbox[];
extern const size_t mozaiks_toolbox_len;

/* A result: `json` (malloc'd; the helper takes it and frees it). */
mozaiks_result mozaiks_ok(char *json);
/* A failure the tool chose, with a printf-style message. */
mozaiks_result mozaiks_error(mozaiks_error_kind kind, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* The key of this tool call (malloc'd): the same on every attempt of it,
 * different for every other call. A call runs at least once (again, from
 * the start, when a server stopped during it); record the key with the
 * call's side effect and skip an effect already recorded to make it
 * exactly once. */
char *mozaiks_idempotency_key(void);
/* Which attempt of its tool call this is: 1 the first time. */
uint32_t mozaiks_attempt(void);

/* The chat's context variable `key` as JSON text, or NULL when it is not set. */
char *mozaiks_context_get(const char *key);
/* Sets `key` to the JSON text `json`. Returns NULL, or why the host refused
 * (malloc'd; for example a value over its size limit). */
char *mozaiks_context_set(const char *key, const char *json);
/* Removes `key`; true if it was set. */
bool mozaiks_context_remove(const char *key);

/* Where a UI component shows. */
typedef enum { MOZAIKS_INLINE, MOZAIKS_ARTIFACT } mozaiks_display;

/* Shows `component` with `payload` (JSON text) and waits up to `timeout_ms`
 * for the user's answer, which it returns as JSON text. On failure it
 * returns NULL and sets `*error`: cancelled when nobody answered in time or
 * the request was cancelled, failed when the chat has no UI or the request
 * is invalid. Return that error from the function. */
char *mozaiks_ui_ask(const char *component, const char *payload, mozaiks_display display,
                     uint32_t timeout_ms, mozaiks_result *error);
/* Shows `component` without waiting for an answer. */
void mozaiks_ui_notify(const char *component, const char *payload, mozaiks_display display);

/* Log levels. */
typedef enum {
    MOZAIKS_TRACE,
    MOZAIKS_DEBUG,
    MOZAIKS_INFO,
    MOZAIKS_WARN,
    MOZAIKS_ERROR,
} mozaiks_level;

/* A structured log record; the host tags it with plugin, function and chat.
 * After the message come field names and string values, ended by NULL:
 *     mozaiks_log(MOZAIKS_INFO, "greeted", "name", name, NULL); */
void mozaiks_log(mozaiks_level level, const char *message, ...) __attribute__((sentinel));

/* JSON helpers for a flat object's top-level members. */

/* The string member `key` of `json`, unescaped (malloc'd), or NULL when it
 * is absent or not a string. */
char *mozaiks_json_string(const char *json, const char *key);
/* The integer member `key` of `json` into `*out`; false when absent or not
 * an integer. */
bool mozaiks_json_int(const char *json, const char *key, long long *out);
/* The boolean member `key` of `json` into `*out`; false when absent or not
 * a boolean. */
bool mozaiks_json_bool(const char *json, const char *key, bool *out);
/* `text` as a JSON string literal, quotes included (malloc'd). */
char *mozaiks_json_quote(const char *text);
/* printf into a malloc'd string. */
char *mozaiks_format(const char *format, ...) __attribute__((format(printf, 1, 2)));

#endif
