"""A thin helper for writing mozaiks tools in Python with componentize-py.

The WIT files in `wit/` are the contract; this module only makes them less
awkward to use from Python:

- `Toolbox` declares functions with their description and JSON Schema and
  turns them into the `Tool` class componentize-py exports;
- `ToolError` is an exception a function raises to fail on purpose (the
  agent sees it as the tool's result);
- `Call` gives a function the chat's context (JSON values in and out), the
  UI (`ask`, `notify`), the log, the plugin's secrets, the app's documents
  (`data`, with `DataError`) and the chat's messages.

Every call runs in a fresh instance: module-level state does not survive
from one call to the next. Keep state in the context.

The app module runs once, when the component is built (componentize-py
snapshots the interpreter after importing it), and every call starts from
that snapshot. `Toolbox.export()`, the app's last line, prepares the
snapshot for fast calls: it warms what every call uses, then freezes the
heap and turns the cyclic garbage collector off (see `_prepare_snapshot`).
"""

import gc
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import chat as _chat
from wit_world.imports import context as _context
from wit_world.imports import data as _data
from wit_world.imports import invocation as _invocation
from wit_world.imports import log as _log
from wit_world.imports import secrets as _secrets
from wit_world.imports import types as _types
from wit_world.imports import ui as _ui

__all__ = [
    "Toolbox",
    "ToolError",
    "Call",
    "Context",
    "Ui",
    "log",
    "Secrets",
    "Data",
    "DataError",
    "Document",
    "Chat",
    "Message",
]


class ToolError(Exception):
    """A failure the tool chose; the agent sees it as the tool's result.

    Raise one of the named kinds, e.g. `raise ToolError.invalid_arguments("...")`.
    Any other exception is a bug: the call traps and the host reports it
    with the traceback the tool printed.
    """

    KINDS = ("unknown_function", "invalid_arguments", "denied", "cancelled", "failed")

    def __init__(self, kind: str, message: str):
        if kind not in self.KINDS:
            raise ValueError(f"unknown ToolError kind {kind!r}; one of {self.KINDS}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def unknown_function(cls, message: str) -> "ToolError":
        return cls("unknown_function", message)

    @classmethod
    def invalid_arguments(cls, message: str) -> "ToolError":
        return cls("invalid_arguments", message)

    @classmethod
    def denied(cls, message: str) -> "ToolError":
        return cls("denied", message)

    @classmethod
    def cancelled(cls, message: str) -> "ToolError":
        return cls("cancelled", message)

    @classmethod
    def failed(cls, message: str) -> "ToolError":
        return cls("failed", message)

    def _to_wit(self) -> Any:
        variant = {
            "unknown_function": _types.ToolError_UnknownFunction,
            "invalid_arguments": _types.ToolError_InvalidArguments,
            "denied": _types.ToolError_Denied,
            "cancelled": _types.ToolError_Cancelled,
            "failed": _types.ToolError_Failed,
        }[self.kind]
        return variant(self.message)


class Context:
    """The chat's context variables, as JSON values."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default` when it is not set."""
        text = _context.get(key)
        return default if text is None else json.loads(text)

    def set(self, key: str, value: Any) -> None:
        """Sets `key` to `value` (anything `json.dumps` takes).

        Raises `ToolError` (failed) when the host refuses the change, for
        example a value over its size limit; the message says why.
        """
        try:
            _context.set(key, json.dumps(value))
        except Err as refused:
            raise ToolError.failed(f"context variable `{key}` not set: {refused.value.value}")

    def remove(self, key: str) -> bool:
        """Removes `key`; True if it was set."""
        return _context.remove(key)

    def entries(self) -> Dict[str, Any]:
        """Every variable of the chat."""
        return {key: json.loads(text) for key, text in _context.entries()}


def _case(name: str, value: str, cases: dict) -> Any:
    """The contract's enum case for `value`, one of `cases`' keys."""
    if value in cases:
        return cases[value]
    allowed = " or ".join(repr(key) for key in cases)
    raise ValueError(f"{name} must be {allowed}, not {value!r}")


class Ui:
    """The chat's user interface."""

    INLINE = "inline"
    ARTIFACT = "artifact"

    @staticmethod
    def _display(display: str) -> Any:
        return _case("display", display, {Ui.INLINE: _ui.Display.INLINE, Ui.ARTIFACT: _ui.Display.ARTIFACT})

    def ask(self, component: str, payload: Any, display: str = INLINE, timeout_s: float = 300) -> Any:
        """Shows `component` with `payload` and waits for the user's answer (JSON).

        Raises `ToolError` cancelled when nobody answers in time or the
        request is cancelled, failed when the chat has no UI or the request
        is invalid, as the Rust SDK does.
        """
        request = _ui.UiRequest(component, json.dumps(payload), self._display(display), int(timeout_s * 1000))
        try:
            return json.loads(_ui.ask(request))
        except Err as refused:
            error = refused.value
            if isinstance(error, _ui.UiError_Timeout):
                raise ToolError.cancelled(f"nobody answered {component} in time")
            if isinstance(error, _ui.UiError_Cancelled):
                raise ToolError.cancelled(f"the request for {component} was cancelled")
            raise ToolError.failed(f"cannot ask through {component}: {error.value}")

    def notify(self, component: str, payload: Any, display: str = INLINE) -> None:
        """Shows `component` without waiting for an answer."""
        _ui.notify(component, json.dumps(payload), self._display(display))


class Secrets:
    """The plugin's secrets: those its `plugin.toml` declares (`[secrets.NAME]`).

    The host replaces every value it handed out with `[redacted secret
    NAME]` in the call's logs, stdout, stderr, result and error message.
    """

    def get(self, name: str) -> Optional[str]:
        """The secret `name`; None when it is optional and has no value.

        Raises `ToolError` (failed, with the host's reason) when the manifest
        does not declare it, or it is required and has none.
        """
        try:
            return _secrets.get(name)
        except Err as refused:
            raise ToolError.failed(refused.value)

    def require(self, name: str) -> str:
        """The secret `name`, which must have a value (else `ToolError` failed)."""
        value = self.get(name)
        if value is None:
            raise ToolError.failed(f"the secret `{name}` has no value")
        return value


@dataclass
class Document:
    """One stored document."""

    id: str
    """Its id inside its collection."""
    version: int
    """Raised by one on every write; the first write makes version 1."""
    body: Any
    """The document (a JSON object, as a dict)."""


class DataError(Exception):
    """Why a data function failed; `kind` is one of `KINDS`.

    `conflict`: the document is not at the expected version; `found` is its
    version now (None: it does not exist). `too_large`, `quota_exceeded`:
    the server's limits, `invalid`: an argument was refused; the message
    says which. Raised out of a function, `invalid` becomes a `ToolError`
    invalid_arguments and the others failed, with the same message (as
    `?` does in Rust).
    """

    KINDS = ("conflict", "too_large", "quota_exceeded", "invalid")

    def __init__(self, kind: str, message: str, found: Optional[int] = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.found = found

    @classmethod
    def _from_wit(cls, error: Any) -> "DataError":
        if isinstance(error, _data.DataError_Conflict):
            if error.value is None:
                return cls("conflict", "version conflict: the document does not exist")
            return cls("conflict", f"version conflict: the document is at version {error.value}", error.value)
        if isinstance(error, _data.DataError_TooLarge):
            return cls("too_large", error.value)
        if isinstance(error, _data.DataError_QuotaExceeded):
            return cls("quota_exceeded", error.value)
        return cls("invalid", error.value)

    def _to_tool_error(self) -> ToolError:
        if self.kind == "invalid":
            return ToolError.invalid_arguments(self.message)
        return ToolError.failed(self.message)


def _document(doc: Any) -> Document:
    return Document(doc.id, doc.version, json.loads(doc.body))


class Data:
    """Documents of the calling chat's app: JSON objects named by a
    collection and an id, each with a version the host raises on every write.

    `scope` is `Data.APP` ("app": the app's documents, shared by its users)
    or `Data.USER` ("user": the chat's user's, inside the app); the host
    decides which app and user from the calling chat. Every function raises
    `DataError` when the host refuses.
    """

    APP = "app"
    USER = "user"

    @staticmethod
    def _scope(scope: str) -> Any:
        return _case("scope", scope, {Data.APP: _data.Scope.APP, Data.USER: _data.Scope.USER})

    def get(self, scope: str, collection: str, id: str) -> Optional[Document]:
        """The document `id` of `collection`, or None."""
        try:
            doc = _data.get(self._scope(scope), collection, id)
        except Err as refused:
            raise DataError._from_wit(refused.value)
        return None if doc is None else _document(doc)

    def put(self, scope: str, collection: str, id: str, body: Dict[str, Any], expected_version: Optional[int] = None) -> int:
        """Writes `body` (a dict, a JSON object) as the document `id` of
        `collection` and returns its new version. With `expected_version`,
        only if the document is at that version now (0: only if it does not
        exist yet); otherwise `DataError` conflict."""
        try:
            return _data.put(self._scope(scope), collection, id, json.dumps(body), expected_version)
        except Err as refused:
            raise DataError._from_wit(refused.value)

    def remove(self, scope: str, collection: str, id: str, expected_version: Optional[int] = None) -> bool:
        """Removes the document; True if it existed. With `expected_version`,
        only if it is at that version now."""
        try:
            return _data.remove(self._scope(scope), collection, id, expected_version)
        except Err as refused:
            raise DataError._from_wit(refused.value)

    def query(
        self,
        scope: str,
        collection: str,
        filters: Optional[Dict[str, Any]] = None,
        after: Optional[str] = None,
        limit: int = 100,
    ) -> List[Document]:
        """The documents of `collection`, by id, whose field at each dotted
        path of `filters` equals its value (`{"customer.id": 7}`); only
        those with an id after `after` (the last of the previous page); at
        most `limit` (the host caps it at 100)."""
        wit_filters = [_data.Filter(path, json.dumps(value)) for path, value in (filters or {}).items()]
        try:
            docs = _data.query(self._scope(scope), collection, wit_filters, after, limit)
        except Err as refused:
            raise DataError._from_wit(refused.value)
        return [_document(doc) for doc in docs]


@dataclass
class Message:
    """One message of the chat."""

    seq: int
    """Its position in the chat's event log."""
    role: str
    """"user" (a person) or "agent"."""
    agent: Optional[str]
    """The agent that said it; None for a person's message."""
    content: str
    """The text (for a structured output, its JSON text; cut by the host over 64 KiB, with a note)."""


class Chat:
    """What the calling chat said so far. Read-only."""

    def recent_messages(self, limit: int) -> List[Message]:
        """The last `limit` messages of the chat (at most 100), oldest first.
        Tool calls and their results are not messages."""
        return [
            Message(m.seq, "user" if m.role == "user" else "agent", m.agent, m.content)
            for m in _chat.recent_messages(limit)
        ]

    def structured_output(self, agent: str) -> Any:
        """The latest structured output of `agent` in this chat (validated
        against its model), as a JSON value; None if it produced none."""
        text = _chat.structured_output(agent)
        return None if text is None else json.loads(text)


class _Log:
    """Structured log records, tagged by the host with plugin, function and chat."""

    def _write(self, level: Any, message: str, fields: Dict[str, Any]) -> None:
        _log.log(level, message, [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()])

    def trace(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.TRACE, message, fields)

    def debug(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.INFO, message, fields)

    def warn(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.WARN, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.ERROR, message, fields)


log = _Log()


class Call:
    """What a function gets besides its arguments: who called, and the chat."""

    def __init__(self, info: Any):
        self.chat_id: str = info.chat_id
        self.workflow: str = info.workflow
        self.agent: str = info.agent
        self.tool_call_id: str = info.tool_call_id
        self.context = Context()
        self.ui = Ui()
        self.log = log
        self.secrets = Secrets()
        self.data = Data()
        self.chat = Chat()

    def idempotency_key(self) -> str:
        """The key of this tool call: the same on every attempt of it,
        different for every other call. A call runs at least once (again,
        from the start, when a server stopped during it); record the key
        with the call's side effect and skip an effect already recorded to
        make it exactly once."""
        return _invocation.idempotency_key()

    def attempt(self) -> int:
        """Which attempt of its tool call this is: 1 the first time."""
        return _invocation.attempt()


Function = Callable[[Dict[str, Any], Call], Any]


class Toolbox:
    """The functions a tool offers, each with a description and a JSON Schema.

        toolbox = Toolbox()

        @toolbox.function("greet", "Greets someone.", {"type": "object", ...})
        def greet(args, call):
            return {"message": f"Hello, {args['name']}!"}

        Tool = toolbox.export()   # the class componentize-py looks for
    """

    def __init__(self) -> None:
        self._functions: Dict[str, Tuple[str, str, Function]] = {}

    def function(self, name: str, description: str, parameters: Dict[str, Any]) -> Callable[[Function], Function]:
        """Registers the decorated `fn(args: dict, call: Call) -> JSON value`."""

        def register(fn: Function) -> Function:
            if name in self._functions:
                raise ValueError(f"function {name!r} is declared twice")
            # Encoded now, at build time, so that `describe` only copies text.
            self._functions[name] = (description, json.dumps(parameters), fn)
            return fn

        return register

    def describe(self) -> List[Any]:
        return [
            _types.FunctionSpec(name, description, parameters)
            for name, (description, parameters, _) in self._functions.items()
        ]

    def call(self, name: str, arguments: str, info: Any) -> str:
        entry = self._functions.get(name)
        try:
            if entry is None:
                raise ToolError.unknown_function(f"no function {name!r}; this tool offers {sorted(self._functions)}")
            result = entry[2](json.loads(arguments), Call(info))
            return json.dumps(result)
        except ToolError as error:
            raise Err(error._to_wit())
        except DataError as error:
            raise Err(error._to_tool_error()._to_wit())

    def export(self) -> type:
        """The `Tool` class to export from the app module; call it last.

        It also prepares the build-time snapshot for fast calls
        (`_prepare_snapshot`), so objects the app creates after it stay
        young and tracked, as in any Python program.
        """
        toolbox = self

        class Tool(exports.Tool):
            def describe(self) -> List[Any]:
                return toolbox.describe()

            def call(self, name: str, arguments: str, info: Any) -> str:
                return toolbox.call(name, arguments, info)

        _prepare_snapshot()
        return Tool


class _SampleInfo:
    """A stand-in for the host's call-info, used only to warm up `Call`."""

    chat_id = workflow = agent = tool_call_id = ""


def _prepare_snapshot() -> None:
    """Makes a call from the build-time snapshot write to fewer pages.

    A call's instance maps the snapshot copy-on-write, so every page of it a
    call writes costs a page fault (docs/benchmarks.md). Three things cut
    those writes:

    - warming up what every call uses (JSON both ways, the `Call` object),
      so that its first-use caches and allocations are in the snapshot;
    - `gc.freeze()`: every object the build made moves to the permanent
      generation, which the collector never scans, so a collection during a
      call does not walk (and write the headers of) the whole heap;
    - `gc.disable()`: no automatic collection during a call. An instance
      lives for one call and is bounded by the tool's `memory_mib`, so
      garbage cycles a call makes are freed with its instance. A tool that
      makes many cycles in one call can still call `gc.collect()`.
    """
    sample = {"text": "é", "n": [1, 2.5, True, None], "nested": {"k": "v"}}
    json.loads(json.dumps(sample))
    json.loads(json.dumps([sample], ensure_ascii=False))
    Call(_SampleInfo())
    gc.collect()
    gc.freeze()
    gc.disable()
