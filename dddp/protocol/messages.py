"""DDP messages: parsing what clients send, and the texts the server sends.

Client side: `parse_client_message` turns a frame's text into a `ClientMessage`
or raises `BadMessage` with Meteor's exact `reason` (table 1.4). Typed requests
(`Subscribe`, `CallMethod`...) are built by `validate_*` once the connection knows
the message is allowed in its state.

Server side: one function per message kind returning the JSON text. Only
`fields`, `params` and `result` carry EJSON (D-3); everything else is plain JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dddp.protocol import ejson
from dddp.protocol.errors import MeteorError

# --- client to server ---------------------------------------------------------


class BadMessage(Exception):
    """A client message that gets the protocol's `error` reply (table 1.4, D-30)."""

    def __init__(self, reason: str, offending: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.offending = offending


@dataclass(frozen=True)
class ClientMessage:
    """A parsed client message: `raw` as received (plain JSON), `params` EJSON-decoded."""

    msg: str
    raw: dict[str, Any]
    params: Any = None


@dataclass(frozen=True)
class Subscribe:
    """`sub`: start publication `name` with `params` under the client's `id` (1.6)."""

    id: str
    name: str
    params: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Unsubscribe:
    """`unsub`: stop subscription `id`; Meteor does not validate it (D-32)."""

    id: Any


@dataclass(frozen=True)
class CallMethod:
    """`method`: call `name` with `params`; `random_seed` seeds reproducible ids (D-85)."""

    id: str
    name: str
    params: list[Any] = field(default_factory=list)
    random_seed: str | None = None


def _reject_constant(name: str) -> Any:
    # NaN and Infinity literals are not JSON; a JS client never sends them.
    raise ValueError(f"{name} is not valid JSON")


class UnrepresentableMessage(BadMessage):
    """Valid JSON holding what no reply can carry: a number beyond a float (`1e999`)
    or a lone surrogate (`"\\ud800"`). Whatever echoed it (a pong's id, a result's
    value, the error's offendingMessage) could not be encoded, and the client would
    wait for ever: it gets its answer without the value (see `answer`)."""

    DETAILS = "a number too large for a float, or a lone surrogate, cannot be answered"

    def __init__(self, raw: Any):
        super().__init__("Bad request")
        self.raw = raw

    def answer(self, connected: bool) -> list[str]:
        """A method's `result` (400) and `updated`, a sub's `nosub` (400), else an `error`."""
        raw = self.raw if isinstance(self.raw, dict) else {}
        id = raw.get("id")
        if connected and isinstance(id, str) and _representable(id):
            refused = refuse_request(raw.get("msg"), id, MeteorError(400, "Bad request", self.DETAILS))
            if refused:
                return refused
        return [error("Bad request")]


# Only a message that may hold a float overflow or a surrogate is checked in full: one
# with a number too long for a float, a surrogate's escape, or the code point itself
# (SockJS decodes its frame's escapes before DDP sees the text). Each test is a scan in C
# that a long text without them passes at memory speed (one regular expression for all
# three cost 10 ms per MB of message: a flood of large pings spent most of the server there).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_INT_DIGITS = 300  # a shorter integer is well within a float's range (1.8e308)


def _maybe_unrepresentable(text: str, suspect_numbers: list[str]) -> bool:
    if suspect_numbers:
        return True
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        return True
    return not text.isascii() and _SURROGATE.search(text) is not None


def _representable(value: Any) -> bool:
    try:
        _encode_value(value).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


def parse_client_message(text: str) -> ClientMessage:
    """Parse one frame's text; raise `BadMessage` as Meteor's server would (table 1.4)."""
    suspect_numbers: list[str] = []

    def parse_float(literal: str) -> float:
        value = float(literal)
        if math.isinf(value):  # 1e999
            suspect_numbers.append(literal)
        return value

    def parse_int(literal: str) -> int:
        if len(literal) > _INT_DIGITS:  # past a float's range, perhaps
            suspect_numbers.append(literal)
        return int(literal)

    try:
        raw = json.loads(text, parse_constant=_reject_constant, parse_float=parse_float, parse_int=parse_int)
    except (ValueError, RecursionError):
        raise BadMessage("Bad request") from None
    if _maybe_unrepresentable(text, suspect_numbers) and not _representable(raw):
        raise UnrepresentableMessage(raw)
    if not isinstance(raw, dict):
        raise BadMessage("Bad request")
    params = None
    if "params" in raw:
        try:
            params = ejson.from_json_value(raw["params"])
        except (ejson.EJSONDecodeError, RecursionError):
            raise BadMessage("Parse error") from None
    msg = raw.get("msg")
    if not msg or not isinstance(msg, str):
        raise BadMessage("Bad request", raw)
    return ClientMessage(msg, raw, params)


def params_too_large(message: ClientMessage, limit: int) -> list[str]:
    """The answer to a sub or method whose params' JSON is over `limit` characters, if it is:
    a 413 `nosub`, or a 413 `result` and `updated`; [] when within the limit or not one of them.

    A subscription's params live as long as it does, each copy of them (its key,
    its observer's): without a bound one connection could pin gigabytes.
    """
    raw = message.raw
    id = raw.get("id")
    if (
        message.msg not in ("sub", "method")
        or not isinstance(id, str)
        or not isinstance(raw.get("params"), list)
    ):
        return []
    size = len(_encode_value(raw["params"]))
    if size <= limit:
        return []
    return refuse_request(
        message.msg,
        id,
        MeteorError(413, "Parameters too large", f"{size} characters of JSON; the limit is {limit}"),
    )


def refuse_request(msg: object, id: str, err: MeteorError) -> list[str]:
    """What answers a request refused before it runs: a method's `result` with `err` and its
    `updated` (D-81), a sub's `nosub` with `err`; [] for any other message."""
    if msg == "method":
        return [result_error(id, err), updated([id])]
    if msg == "sub":
        return [nosub(id, err)]
    return []


def validate_subscribe(message: ClientMessage) -> Subscribe:
    """A `sub` needs string `id` and `name`, and `params` (if any) an array."""
    raw = message.raw
    if (
        not isinstance(raw.get("id"), str)
        or not isinstance(raw.get("name"), str)
        or ("params" in raw and not isinstance(raw["params"], list))
    ):
        raise BadMessage("Malformed subscription", raw)
    return Subscribe(raw["id"], raw["name"], message.params or [])


def validate_method(message: ClientMessage) -> CallMethod:
    """A `method` needs string `id` and `method`, array `params`, string `randomSeed`."""
    raw = message.raw
    if (
        not isinstance(raw.get("id"), str)
        or not isinstance(raw.get("method"), str)
        or ("params" in raw and not isinstance(raw["params"], list))
        or ("randomSeed" in raw and not isinstance(raw["randomSeed"], str))
    ):
        raise BadMessage("Malformed method invocation", raw)
    return CallMethod(raw["id"], raw["method"], message.params or [], raw.get("randomSeed"))


# --- server to client ---------------------------------------------------------


# One encoder for every message: `json.dumps` with options makes a new one per
# call, and `JSONEncoder.encode` a new C encoder per call; made once, the C
# encoder takes half the time. (Without the circular-reference check: message
# values come from the database and EJSON, which make no cycles.)
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]  # a JSON string literal
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_make_encoder is not None:
    _c_encoder = _c_make_encoder(None, _encoder.default, _encode_string, None, ":", ",", False, False, False)

    def _encode_value(value: Any) -> str:
        return "".join(_c_encoder(value, 0))

else:  # no C accelerator (not CPython)
    _encode_value = _encoder.encode  # type: ignore[assignment]


def encode(message: dict[str, Any]) -> str:
    """The compact JSON text of a message whose EJSON parts are already encoded."""
    return _encode_value(message)


def connected(session: str) -> str:
    return encode({"msg": "connected", "session": session})


def failed(version: str) -> str:
    return encode({"msg": "failed", "version": version})


#: Marks an absent `id`, which differs from a JSON null one (D-20).
NO_ID: Any = object()


def ping(id: Any = NO_ID) -> str:
    return encode({"msg": "ping"} if id is NO_ID else {"msg": "ping", "id": id})


def pong(id: Any = NO_ID) -> str:
    """Copies the ping's `id` if and only if it had one, null included (D-20)."""
    return encode({"msg": "pong"} if id is NO_ID else {"msg": "pong", "id": id})


def error(reason: str, offending: dict[str, Any] | None = None) -> str:
    if offending is None:
        return encode({"msg": "error", "reason": reason})
    return encode({"msg": "error", "reason": reason, "offendingMessage": offending})


def nosub(id: Any, err: MeteorError | None = None) -> str:
    if err is None:
        return encode({"msg": "nosub", "id": id})
    return encode({"msg": "nosub", "id": id, "error": err.to_wire()})


def ready(sub_ids: Sequence[str]) -> str:
    return encode({"msg": "ready", "subs": list(sub_ids)})


def added(collection: str, id: str, fields: dict[str, Any]) -> str:
    # The same text as encode() of the message dict, put together directly: a
    # publication's every document is sent this way, so it is worth the speed.
    head = f'{{"msg":"added","collection":{_encode_string(collection)},"id":{_encode_string(id)}'
    if not fields:  # D-52: fields omitted when empty
        return head + "}"
    return f'{head},"fields":{_encode_value(ejson.to_json_value(fields))}}}'


def changed(collection: str, id: str, fields: dict[str, Any], cleared: Iterable[str] = ()) -> str:
    message: dict[str, Any] = {"msg": "changed", "collection": collection, "id": id}
    if fields:
        message["fields"] = ejson.to_json_value(fields)
    cleared = list(cleared)
    if cleared:
        message["cleared"] = cleared
    if len(message) == 3:
        raise ValueError("a changed message needs fields or cleared (D-58)")
    return encode(message)


def removed(collection: str, id: str) -> str:
    return encode({"msg": "removed", "collection": collection, "id": id})


def result(id: str, value: Any = None) -> str:
    """A method's successful `result`; None (JS undefined) omits the key (1.7)."""
    if value is None:
        return encode({"msg": "result", "id": id})
    return encode({"msg": "result", "id": id, "result": ejson.to_json_value(value)})


def result_error(id: str, err: MeteorError) -> str:
    return encode({"msg": "result", "id": id, "error": err.to_wire()})


def updated(method_ids: Sequence[str]) -> str:
    return encode({"msg": "updated", "methods": list(method_ids)})
