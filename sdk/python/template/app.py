"""A starter tool in Python: an agent function and a UI function.

`greet` counts greetings in the chat's context; `request_approval` asks the
user through the ApprovalForm UI component and keeps the answer in the
context. Build with `mozaiks tool build .` and try it with
`mozaiks tool call . greet --args '{"name":"Ada"}'`.
"""

from mozaiks_tool import Call, ToolError, Toolbox

toolbox = Toolbox()


@toolbox.function(
    "greet",
    "Greets someone by name. Returns the greeting and how many greetings this chat has had.",
    {
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1}},
        "required": ["name"],
        "additionalProperties": False,
    },
)
def greet(args: dict, call: Call) -> dict:
    greetings = call.context.get("greetings", 0) + 1
    call.context.set("greetings", greetings)
    call.log.info("greeted", name=args["name"])
    return {"message": f"Hello, {args['name']}!", "greetings": greetings}


@toolbox.function(
    "request_approval",
    "Asks the user to approve something. Returns whether they approved and their comment.",
    {
        "type": "object",
        "properties": {"question": {"type": "string", "minLength": 1}},
        "required": ["question"],
        "additionalProperties": False,
    },
)
def request_approval(args: dict, call: Call) -> dict:
    call.ui.notify("Progress", {"text": "waiting for approval"})
    answer = call.ui.ask("ApprovalForm", {"question": args["question"]}, timeout_s=300)
    if not isinstance(answer, dict) or not isinstance(answer.get("approved"), bool):
        raise ToolError.failed(f"ApprovalForm answered {answer!r}, not {{\"approved\": true|false}}")
    call.context.set("approved", answer["approved"])
    call.log.info("approval answered", approved=answer["approved"])
    return {"approved": answer["approved"], "comment": answer.get("comment", "")}


# The class componentize-py exports as the component's `tool` interface.
Tool = toolbox.export()
