/* The helper of mozaiks_tool.h on the bindings generated from the WIT
 * (bindings/plugin.h): the component's exports, and the imports with plain
 * C strings. */
#include "mozaiks_tool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* ---- strings between C and the bindings ---- */

static char *from_wit(const plugin_string_t *s) {
    char *text = malloc(s->len + 1);
    if (!text) abort();
    memcpy(text, s->ptr, s->len);
    text[s->len] = '\0';
    return text;
}

static plugin_string_t borrowed(const char *text) {
    plugin_string_t s;
    plugin_string_set(&s, text);
    return s;
}

static char *vformat(const char *format, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int len = vsnprintf(NULL, 0, format, copy);
    va_end(copy);
    char *text = malloc((size_t)(len < 0 ? 0 : len) + 1);
    if (!text) abort();
    vsnprintf(text, (size_t)len + 1, format, args);
    return text;
}

char *mozaiks_format(const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *text = vformat(format, args);
    va_end(args);
    return text;
}

mozaiks_result mozaiks_ok(char *json) {
    mozaiks_result result = {true, MOZAIKS_FAILED, json};
    return result;
}

mozaiks_result mozaiks_error(mozaiks_error_kind kind, const char *format, ...) {
    va_list args;
    va_start(args, format);
    mozaiks_result result = {false, kind, vformat(format, args)};
    va_end(args);
    return result;
}

/* ---- the exports ---- */

void exports_mozaiks_plugin_tool_describe(exports_mozaiks_plugin_tool_list_function_spec_t *ret) {
    ret->len = mozaiks_toolbox_len;
    ret->ptr = calloc(mozaiks_toolbox_len ? mozaiks_toolbox_len : 1, sizeof(*ret->ptr));
    if (!ret->ptr) abort();
    for (size_t i = 0; i < mozaiks_toolbox_len; i++) {
        plugin_string_dup(&ret->ptr[i].name, mozaiks_toolbox[i].name);
        plugin_string_dup(&ret->ptr[i].description, mozaiks_toolbox[i].description);
        plugin_string_dup(&ret->ptr[i].parameters, mozaiks_toolbox[i].parameters);
    }
}

bool exports_mozaiks_plugin_tool_call(plugin_string_t *name, plugin_string_t *arguments,
                                      exports_mozaiks_plugin_tool_call_info_t *info,
                                      plugin_string_t *ret,
                                      exports_mozaiks_plugin_tool_tool_error_t *err) {
    char *function = from_wit(name);
    char *args = from_wit(arguments);
    mozaiks_call call = {from_wit(&info->chat_id), from_wit(&info->workflow),
                         from_wit(&info->agent), from_wit(&info->tool_call_id)};
    mozaiks_result result = mozaiks_error(MOZAIKS_UNKNOWN_FUNCTION, "no function `%s`", function);
    for (size_t i = 0; i < mozaiks_toolbox_len; i++) {
        if (strcmp(mozaiks_toolbox[i].name, function) == 0) {
            free(result.text);
            result = mozaiks_toolbox[i].handler(args, &call);
            break;
        }
    }
    plugin_string_free(name);
    plugin_string_free(arguments);
    exports_mozaiks_plugin_tool_call_info_free(info);
    free(function);
    free(args);
    free((char *)call.chat_id);
    free((char *)call.workflow);
    free((char *)call.agent);
    free((char *)call.tool_call_id);
    const char *text = result.text ? result.text : "";
    if (result.ok) {
        plugin_string_dup(ret, text);
    } else {
        static const uint8_t tags[] = {
            [MOZAIKS_UNKNOWN_FUNCTION] = MOZAIKS_PLUGIN_TYPES_TOOL_ERROR_UNKNOWN_FUNCTION,
            [MOZAIKS_INVALID_ARGUMENTS] = MOZAIKS_PLUGIN_TYPES_TOOL_ERROR_INVALID_ARGUMENTS,
            [MOZAIKS_DENIED] = MOZAIKS_PLUGIN_TYPES_TOOL_ERROR_DENIED,
            [MOZAIKS_CANCELLED] = MOZAIKS_PLUGIN_TYPES_TOOL_ERROR_CANCELLED,
            [MOZAIKS_FAILED] = MOZAIKS_PLUGIN_TYPES_TOOL_ERROR_FAILED,
        };
        err->tag = tags[result.kind];
        /* Every variant carries one string, at the same place. */
        plugin_string_dup(&err->val.failed, text);
    }
    free(result.text);
    return result.ok;
}

/* ---- invocation ---- */

char *mozaiks_idempotency_key(void) {
    plugin_string_t key;
    mozaiks_plugin_invocation_idempotency_key(&key);
    char *text = from_wit(&key);
    plugin_string_free(&key);
    return text;
}

uint32_t mozaiks_attempt(void) { return mozaiks_plugin_invocation_attempt(); }

/* ---- context ---- */

char *mozaiks_context_get(const char *key) {
    plugin_string_t k = borrowed(key), value;
    if (!mozaiks_plugin_context_get(&k, &value)) return NULL;
    char *text = from_wit(&value);
    plugin_string_free(&value);
    return text;
}

char *mozaiks_context_set(const char *key, const char *json) {
    plugin_string_t k = borrowed(key), v = borrowed(json);
    mozaiks_plugin_context_context_error_t refused;
    if (mozaiks_plugin_context_set(&k, &v, &refused)) return NULL;
    /* Both variants carry one string, at the same place. */
    char *why = from_wit(&refused.val.rejected);
    mozaiks_plugin_context_context_error_free(&refused);
    return why;
}

bool mozaiks_context_remove(const char *key) {
    plugin_string_t k = borrowed(key);
    return mozaiks_plugin_context_remove(&k);
}

/* ---- ui ---- */

static mozaiks_plugin_ui_display_t display_of(mozaiks_display display) {
    return display == MOZAIKS_ARTIFACT ? MOZAIKS_PLUGIN_UI_DISPLAY_ARTIFACT
                                       : MOZAIKS_PLUGIN_UI_DISPLAY_INLINE;
}

char *mozaiks_ui_ask(const char *component, const char *payload, mozaiks_display display,
                     uint32_t timeout_ms, mozaiks_result *error) {
    mozaiks_plugin_ui_ui_request_t request = {borrowed(component), borrowed(payload),
                                              display_of(display), timeout_ms};
    plugin_string_t answer;
    mozaiks_plugin_ui_ui_error_t refused;
    if (mozaiks_plugin_ui_ask(&request, &answer, &refused)) {
        char *text = from_wit(&answer);
        plugin_string_free(&answer);
        return text;
    }
    switch (refused.tag) {
    case MOZAIKS_PLUGIN_UI_UI_ERROR_TIMEOUT:
        *error = mozaiks_error(MOZAIKS_CANCELLED, "nobody answered %s in time", component);
        break;
    case MOZAIKS_PLUGIN_UI_UI_ERROR_CANCELLED:
        *error = mozaiks_error(MOZAIKS_CANCELLED, "the request for %s was cancelled", component);
        break;
    default: {
        /* unavailable and invalid-request carry one string, at the same place. */
        char *why = from_wit(&refused.val.unavailable);
        *error = mozaiks_error(MOZAIKS_FAILED, "cannot ask through %s: %s", component, why);
        free(why);
    }
    }
    mozaiks_plugin_ui_ui_error_free(&refused);
    return NULL;
}

void mozaiks_ui_notify(const char *component, const char *payload, mozaiks_display display) {
    plugin_string_t c = borrowed(component), p = borrowed(payload);
    mozaiks_plugin_ui_notify(&c, &p, display_of(display));
}

/* ---- log ---- */

void mozaiks_log(mozaiks_level level, const char *message, ...) {
    enum { MAX_FIELDS = 16 };
    plugin_tuple2_string_string_t fields[MAX_FIELDS];
    size_t count = 0;
    va_list args;
    va_start(args, message);
    const char *name;
    while (count < MAX_FIELDS && (name = va_arg(args, const char *)) != NULL) {
        const char *value = va_arg(args, const char *);
        fields[count].f0 = borrowed(name);
        fields[count].f1 = borrowed(value ? value : "");
        count++;
    }
    va_end(args);
    plugin_string_t m = borrowed(message);
    plugin_list_tuple2_string_string_t list = {fields, count};
    mozaiks_plugin_log_log((mozaiks_plugin_log_level_t)level, &m, &list);
}

/* ---- JSON ---- */

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* Past the JSON string starting at the quote `p`; NULL if unterminated. */
static const char *skip_string(const char *p) {
    for (p++; *p; p++) {
        if (*p == '\\' && p[1]) p++;
        else if (*p == '"') return p + 1;
    }
    return NULL;
}

/* Past the JSON value at `p`; NULL if malformed. */
static const char *skip_value(const char *p) {
    p = skip_space(p);
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_string(p);
                if (!p) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n') p++;
    return p;
}

/* The value of the top-level member `key` of the object `json`, or NULL. */
static const char *member(const char *json, const char *key) {
    const char *p = skip_space(json);
    if (*p != '{') return NULL;
    p = skip_space(p + 1);
    size_t key_len = strlen(key);
    while (*p == '"') {
        const char *end = skip_string(p);
        if (!end) return NULL;
        bool match = (size_t)(end - p - 2) == key_len && memcmp(p + 1, key, key_len) == 0;
        p = skip_space(end);
        if (*p != ':') return NULL;
        p = skip_space(p + 1);
        if (match) return p;
        p = skip_value(p);
        if (!p) return NULL;
        p = skip_space(p);
        if (*p != ',') return NULL;
        p = skip_space(p + 1);
    }
    return NULL;
}

static void put_utf8(char **out, unsigned code) {
    char *o = *out;
    if (code < 0x80) {
        *o++ = (char)code;
    } else if (code < 0x800) {
        *o++ = (char)(0xC0 | (code >> 6));
        *o++ = (char)(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
        *o++ = (char)(0xE0 | (code >> 12));
        *o++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *o++ = (char)(0x80 | (code & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (code >> 18));
        *o++ = (char)(0x80 | ((code >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *o++ = (char)(0x80 | (code & 0x3F));
    }
    *out = o;
}

static bool hex4(const char *p, unsigned *code) {
    *code = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned digit;
        if (c >= '0' && c <= '9') digit = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') digit = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') digit = (unsigned)(c - 'A' + 10);
        else return false;
        *code = *code * 16 + digit;
    }
    return true;
}

char *mozaiks_json_string(const char *json, const char *key) {
    const char *p = member(json, key);
    if (!p || *p != '"') return NULL;
    const char *end = skip_string(p);
    if (!end) return NULL;
    char *text = malloc((size_t)(end - p));
    if (!text) abort();
    char *o = text;
    for (p++; p < end - 1; p++) {
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        p++;
        switch (*p) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned code, low;
            if (!hex4(p + 1, &code)) {
                free(text);
                return NULL;
            }
            p += 4;
            if (code >= 0xD800 && code < 0xDC00 && p[1] == '\\' && p[2] == 'u' &&
                hex4(p + 3, &low) && low >= 0xDC00 && low < 0xE000) {
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            }
            put_utf8(&o, code);
            break;
        }
        default: *o++ = *p; /* \" \\ \/ */
        }
    }
    *o = '\0';
    return text;
}

bool mozaiks_json_int(const char *json, const char *key, long long *out) {
    const char *p = member(json, key);
    if (!p || !(*p == '-' || (*p >= '0' && *p <= '9'))) return false;
    char *end;
    long long value = strtoll(p, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E') return false;
    *out = value;
    return true;
}

bool mozaiks_json_bool(const char *json, const char *key, bool *out) {
    const char *p = member(json, key);
    if (!p) return false;
    if (strncmp(p, "true", 4) == 0) *out = true;
    else if (strncmp(p, "false", 5) == 0) *out = false;
    else return false;
    return true;
}

char *mozaiks_json_quote(const char *text) {
    size_t len = strlen(text);
    char *quoted = malloc(len * 6 + 3);
    if (!quoted) abort();
    char *o = quoted;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = '\0';
    return quoted;
}
