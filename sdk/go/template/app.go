// A starter tool in Go: an agent function and a UI function.
//
// `greet` counts greetings in the chat's context; `request_approval` asks the
// user through the ApprovalForm UI component and keeps the answer in the
// context. Build with `mozaiks tool build .` and try it with
// `mozaiks tool call . greet --args '{"name":"Ada"}'`.
package main

import (
	"encoding/json"

	"mozaiks.local/tool/mozaiks"
)

func init() {
	mozaiks.Function("greet",
		"Greets someone by name. Returns the greeting and how many greetings this chat has had.",
		`{"type":"object","properties":{"name":{"type":"string","minLength":1}},"required":["name"],"additionalProperties":false}`,
		greet)
	mozaiks.Function("request_approval",
		"Asks the user to approve something. Returns whether they approved and their comment.",
		`{"type":"object","properties":{"question":{"type":"string","minLength":1}},"required":["question"],"additionalProperties":false}`,
		requestApproval)
}

func greet(raw json.RawMessage, call *mozaiks.Call) (any, error) {
	var args struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, mozaiks.Errorf(mozaiks.InvalidArguments, "%v", err)
	}
	greetings := 0
	if _, err := call.ContextGet("greetings", &greetings); err != nil {
		return nil, err
	}
	greetings++
	if err := call.ContextSet("greetings", greetings); err != nil {
		return nil, err
	}
	call.Log(mozaiks.Info, "greeted", "name", args.Name)
	return map[string]any{"message": "Hello, " + args.Name + "!", "greetings": greetings}, nil
}

func requestApproval(raw json.RawMessage, call *mozaiks.Call) (any, error) {
	var args struct {
		Question string `json:"question"`
	}
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, mozaiks.Errorf(mozaiks.InvalidArguments, "%v", err)
	}
	call.Notify("Progress", map[string]string{"text": "waiting for approval"}, mozaiks.Inline)
	var answer struct {
		Approved *bool  `json:"approved"`
		Comment  string `json:"comment"`
	}
	if err := call.Ask("ApprovalForm", map[string]string{"question": args.Question}, mozaiks.Inline, 300000, &answer); err != nil {
		return nil, err
	}
	if answer.Approved == nil {
		return nil, mozaiks.Errorf(mozaiks.Failed, `ApprovalForm answered without {"approved": true|false}`)
	}
	if err := call.ContextSet("approved", *answer.Approved); err != nil {
		return nil, err
	}
	call.Log(mozaiks.Info, "approval answered", "approved", *answer.Approved)
	return map[string]any{"approved": *answer.Approved, "comment": answer.Comment}, nil
}

// A Go tool is a c-shared module: main never runs.
func main() {}
