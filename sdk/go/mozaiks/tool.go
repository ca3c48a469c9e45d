// Package mozaiks is a thin helper for writing mozaiks tools in Go.
//
// The WIT files in wit/ are the contract; this package makes them easy to
// use from Go:
//
//   - Function declares a function with its description and JSON Schema
//     (call it from an init function);
//   - a function returns a result (anything encoding/json takes) or an
//     error: a *ToolError of a kind, a *DataError, or any other error,
//     which the agent sees as a failed call. A panic traps the call;
//   - Call gives a function who called, the chat's context (JSON values in
//     and out), the UI (Ask, Notify), the log, the plugin's secrets
//     (Secret, RequireSecret), the app's documents (DataGet, DataPut,
//     DataRemove, DataQuery) and the chat's messages and structured
//     outputs (RecentMessages, StructuredOutput).
//
// Every call runs in a fresh instance: package-level state does not
// survive from one call to the next. Keep state in the context.
package mozaiks

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrorKind is the kind of a tool's own failure (the WIT's tool-error).
type ErrorKind uint8

// The kinds, in the WIT's order.
const (
	UnknownFunction ErrorKind = iota
	InvalidArguments
	Denied
	Cancelled
	Failed
)

// ToolError is a failure the tool chose; the agent sees it as the result.
type ToolError struct {
	Kind    ErrorKind
	Message string
}

func (e *ToolError) Error() string { return e.Message }

// Errorf makes a ToolError of kind with a formatted message.
func Errorf(kind ErrorKind, format string, args ...any) *ToolError {
	return &ToolError{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Call is who called (the chat, its workflow, the agent and the LLM's id
// of this call) and the way to the chat's context, UI and log, the
// plugin's secrets, the app's documents and the chat's messages.
type Call struct {
	ChatID     string
	Workflow   string
	Agent      string
	ToolCallID string
}

// Handler is a function of the tool. args is its arguments, a JSON object
// the host has already checked against the function's schema.
//
// The error it returns is what the agent sees: a *ToolError as it is; a
// *DataError of kind Invalid, a ToolError (invalid arguments), and of the
// other kinds a ToolError (failed), as the Rust SDK does; any other error a
// ToolError (failed) with its message. Both are found inside wrapped
// errors (errors.As), which keep the whole message of the error returned.
type Handler func(args json.RawMessage, call *Call) (any, error)

type function struct {
	name, description, parameters string
	handler                       Handler
}

var toolbox []function

// Function declares a function the tool offers: its name (letters, digits,
// `_`, `-`), what it does (the LLM reads it), the JSON Schema of its
// arguments, and its code. Call it from an init function.
func Function(name, description, parameters string, handler Handler) {
	toolbox = append(toolbox, function{name, description, parameters, handler})
}

func dispatch(name, args string, call *Call) (string, *ToolError) {
	for _, f := range toolbox {
		if f.name != name {
			continue
		}
		value, err := f.handler(json.RawMessage(args), call)
		if err != nil {
			return "", asToolError(err)
		}
		text, err := json.Marshal(value)
		if err != nil {
			return "", Errorf(Failed, "the result of %s is not JSON: %v", name, err)
		}
		return string(text), nil
	}
	return "", Errorf(UnknownFunction, "no function `%s`", name)
}

// asToolError is the tool error a function's error makes (see Handler).
func asToolError(err error) *ToolError {
	var failure *ToolError
	if errors.As(err, &failure) {
		if failure == err {
			return failure
		}
		return &ToolError{Kind: failure.Kind, Message: err.Error()}
	}
	var data *DataError
	if errors.As(err, &data) && data.Kind == Invalid {
		return &ToolError{Kind: InvalidArguments, Message: err.Error()}
	}
	return &ToolError{Kind: Failed, Message: err.Error()}
}

// IdempotencyKey is the key of this tool call: the same on every attempt
// of it, different for every other call. A call runs at least once (again,
// from the start, when a server stopped during it); record the key with
// the call's side effect and skip an effect already recorded to make it
// exactly once.
func (c *Call) IdempotencyKey() string { return rawIdempotencyKey() }

// Attempt is which attempt of its tool call this is: 1 the first time.
func (c *Call) Attempt() uint32 { return invocationAttempt() }

// ContextGet reads the context variable key into into (as json.Unmarshal
// does); false when it is not set.
func (c *Call) ContextGet(key string, into any) (bool, error) {
	text, ok := rawContextGet(key)
	return decodeFound(text, ok, into, "context variable `"+key+"`")
}

// decodeFound unmarshals text into into when found; a text that does not
// fit is a ToolError (failed) that names what it is.
func decodeFound(text string, found bool, into any, what string) (bool, error) {
	if !found {
		return false, nil
	}
	if err := json.Unmarshal([]byte(text), into); err != nil {
		return true, Errorf(Failed, "%s is not what was expected: %v", what, err)
	}
	return true, nil
}

// ContextSet sets key to value (anything json.Marshal takes). A value the
// host refuses (over its size limit, say) is a ToolError (failed) that
// names the variable.
func (c *Call) ContextSet(key string, value any) error {
	text, err := json.Marshal(value)
	if err != nil {
		return Errorf(Failed, "context variable `%s` not set: %v", key, err)
	}
	if why, ok := rawContextSet(key, string(text)); !ok {
		return Errorf(Failed, "context variable `%s` not set: %s", key, why)
	}
	return nil
}

// ContextRemove removes key; true if it was set.
func (c *Call) ContextRemove(key string) bool { return rawContextRemove(key) }

// Display is where a UI component shows.
type Display uint32

// The displays, in the WIT's order.
const (
	Inline Display = iota
	Artifact
)

// Ask shows component with payload and waits up to timeoutMs for the
// user's answer, which it decodes into into. Nobody answering in time or a
// cancelled request is a ToolError (cancelled); a chat without UI or an
// invalid request, a ToolError (failed). Return it from the function.
func (c *Call) Ask(component string, payload any, display Display, timeoutMs uint32, into any) error {
	text, err := json.Marshal(payload)
	if err != nil {
		return Errorf(Failed, "the payload for %s is not JSON: %v", component, err)
	}
	answer, tag, why := rawUIAsk(component, string(text), uint32(display), timeoutMs)
	switch tag {
	case -1:
	case uiTimeout:
		return Errorf(Cancelled, "nobody answered %s in time", component)
	case uiCancelled:
		return Errorf(Cancelled, "the request for %s was cancelled", component)
	default:
		return Errorf(Failed, "cannot ask through %s: %s", component, why)
	}
	if err := json.Unmarshal([]byte(answer), into); err != nil {
		return Errorf(Failed, "%s answered %s: %v", component, answer, err)
	}
	return nil
}

// Notify shows component with payload without waiting for an answer.
func (c *Call) Notify(component string, payload any, display Display) {
	text, err := json.Marshal(payload)
	if err != nil {
		text = []byte("null")
	}
	rawUINotify(component, string(text), uint32(display))
}

// Level is a log record's level.
type Level uint32

// The levels, in the WIT's order.
const (
	Trace Level = iota
	Debug
	Info
	Warn
	Error
)

// Log writes a structured record; the host tags it with plugin, function
// and chat. fields are name, value pairs; a value that is not a string is
// written as JSON.
func (c *Call) Log(level Level, message string, fields ...any) {
	pairs := make([][2]string, 0, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		name := fmt.Sprint(fields[i])
		value, ok := fields[i+1].(string)
		if !ok {
			text, err := json.Marshal(fields[i+1])
			if err != nil {
				text = []byte(fmt.Sprint(fields[i+1]))
			}
			value = string(text)
		}
		pairs = append(pairs, [2]string{name, value})
	}
	rawLog(uint32(level), message, pairs)
}

// Secret is the value of the plugin's secret name, declared in its
// plugin.toml as [secrets.NAME]; ok is false when it is declared optional
// (required = false) and has no value. A name the manifest does not declare
// (even one with a value), or a required secret without a value, is a
// ToolError (failed) with the host's reason. The host replaces every value
// it handed out with `[redacted secret NAME]` in the call's logs, stdout,
// stderr, result and error message.
func (c *Call) Secret(name string) (value string, ok bool, err error) {
	value, ok, why, refused := rawSecretGet(name)
	if refused {
		return "", false, &ToolError{Kind: Failed, Message: why}
	}
	return value, ok, nil
}

// RequireSecret is the value of the secret name, which must have one: as
// Secret, and an optional secret without a value is a ToolError (failed)
// too ("the secret `NAME` has no value").
func (c *Call) RequireSecret(name string) (string, error) {
	value, ok, err := c.Secret(name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", Errorf(Failed, "the secret `%s` has no value", name)
	}
	return value, nil
}

// Message is one message of the calling chat.
type Message struct {
	// Seq is its position in the chat's event log.
	Seq uint64 `json:"seq"`
	// Role is who said it: "user" (a person) or "agent".
	Role string `json:"role"`
	// Agent is the agent that said it; "" for a person's message.
	Agent string `json:"agent,omitempty"`
	// Content is the text (for a structured output, its JSON text; the
	// host cuts a text over 64 KiB and says so at its end).
	Content string `json:"content"`
}

// RecentMessages is the last limit messages of the calling chat (the host
// caps limit at 100), oldest first. Tool calls and their results are not
// messages.
func (c *Call) RecentMessages(limit uint32) []Message { return rawRecentMessages(limit) }

// StructuredOutput reads the latest structured output of agent in the
// calling chat (validated against its model) into into (as json.Unmarshal
// does); false when the agent has produced none. An output that does not
// fit into is a ToolError (failed) that names the agent.
func (c *Call) StructuredOutput(agent string, into any) (bool, error) {
	text, ok := rawStructuredOutput(agent)
	return decodeFound(text, ok, into, "the structured output of `"+agent+"`")
}
