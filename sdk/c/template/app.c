/* A starter tool in C: an agent function and a UI function.
 *
 * `greet` counts greetings in the chat's context; `request_approval` asks the
 * user through the ApprovalForm UI component and keeps the answer in the
 * context. Build with `mozaiks tool build .` and try it with
 * `mozaiks tool call . greet --args '{"name":"Ada"}'`.
 */
#include <stdlib.h>

#include "mozaiks_tool.h"

static mozaiks_result greet(const char *args, const mozaiks_call *call) {
    (void)call;
    char *name = mozaiks_json_string(args, "name");
    if (!name) return mozaiks_error(MOZAIKS_INVALID_ARGUMENTS, "`name` must be a string");
    long long greetings = 0;
    char *stored = mozaiks_context_get("greetings");
    if (stored) {
        /* The context holds JSON values; wrap it to read it as a member. */
        char *wrapped = mozaiks_format("{\"v\":%s}", stored);
        mozaiks_json_int(wrapped, "v", &greetings);
        free(wrapped);
        free(stored);
    }
    greetings++;
    char *count = mozaiks_format("%lld", greetings);
    char *refused = mozaiks_context_set("greetings", count);
    if (refused) {
        mozaiks_result error = mozaiks_error(MOZAIKS_FAILED, "greetings not kept: %s", refused);
        free(refused);
        free(count);
        free(name);
        return error;
    }
    mozaiks_log(MOZAIKS_INFO, "greeted", "name", name, NULL);
    char *message = mozaiks_format("Hello, %s!", name);
    char *quoted = mozaiks_json_quote(message);
    char *result = mozaiks_format("{\"message\":%s,\"greetings\":%s}", quoted, count);
    free(quoted);
    free(message);
    free(count);
    free(name);
    return mozaiks_ok(result);
}

static mozaiks_result request_approval(const char *args, const mozaiks_call *call) {
    (void)call;
    char *question = mozaiks_json_string(args, "question");
    if (!question) return mozaiks_error(MOZAIKS_INVALID_ARGUMENTS, "`question` must be a string");
    mozaiks_ui_notify("Progress", "{\"text\":\"waiting for approval\"}", MOZAIKS_INLINE);
    char *quoted = mozaiks_json_quote(question);
    char *payload = mozaiks_format("{\"question\":%s}", quoted);
    free(quoted);
    free(question);
    mozaiks_result error;
    char *answer = mozaiks_ui_ask("ApprovalForm", payload, MOZAIKS_INLINE, 300000, &error);
    free(payload);
    if (!answer) return error;
    bool approved;
    if (!mozaiks_json_bool(answer, "approved", &approved)) {
        error = mozaiks_error(MOZAIKS_FAILED,
                              "ApprovalForm answered %s, not {\"approved\": true|false}", answer);
        free(answer);
        return error;
    }
    char *comment = mozaiks_json_string(answer, "comment");
    free(answer);
    char *refused = mozaiks_context_set("approved", approved ? "true" : "false");
    if (refused) {
        error = mozaiks_error(MOZAIKS_FAILED, "the answer was not kept: %s", refused);
        free(refused);
        free(comment);
        return error;
    }
    mozaiks_log(MOZAIKS_INFO, "approval answered", "approved", approved ? "true" : "false", NULL);
    char *comment_json = mozaiks_json_quote(comment ? comment : "");
    char *result = mozaiks_format("{\"approved\":%s,\"comment\":%s}",
                                  approved ? "true" : "false", comment_json);
    free(comment_json);
    free(comment);
    return mozaiks_ok(result);
}

MOZAIKS_TOOLBOX(
    {"greet",
     "Greets someone by name. Returns the greeting and how many greetings this chat has had.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1}},"
     "\"required\":[\"name\"],\"additionalProperties\":false}",
     greet},
    {"request_approval",
     "Asks the user to approve something. Returns whether they approved and their comment.",
     "{\"type\":\"object\",\"properties\":{\"question\":{\"type\":\"string\",\"minLength\":1}},"
     "\"required\":[\"question\"],\"additionalProperties\":false}",
     request_approval});
