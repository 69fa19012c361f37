"""Meteor EJSON (spec section 2): encode Python values to JSON and back.

This is Meteor's EJSON, not the unrelated PyPI ``ejson`` package. Stdlib only.

Wire forms (table 2.1) and the Python mapping chosen for dddp (table 2.4):

* ``None``/``bool``/``str`` -> JSON as is. ``bool`` stays ``bool``, never a number.
* ``int`` -> number; outside +-(2**53 - 1) it is sent as a *decimal string*,
  because a JS number would silently lose precision. Decoding, a JSON integer outside
  that range becomes the ``float`` JS would see (so 1e20 sent by JS comes back as a
  number, not a string); integers inside it stay ``int``, fractions give ``float``.
* ``float`` -> number; nan/inf/-inf -> ``{"$InfNaN": 0/1/-1}``. Decoding takes the
  sign (``x / 0`` in JS): >0 inf, <0 -inf, 0 nan.
* ``list``/``tuple`` -> array (decodes to ``list``). ``set``/``frozenset`` -> TypeError (E-30).
* ``dict`` with ``str`` keys -> object; other keys -> TypeError (E-30). A dict whose
  key set equals a recogniser's (E-1) is wrapped in ``{"$escape": ...}`` (E-10, E-11).
* ``datetime`` -> ``{"$date": <int ms since epoch>}``; aware values are converted to
  UTC, *naive values are taken as UTC*; sub-millisecond digits are floored. Decoding
  accepts int or float ms (truncated toward zero like JS ``Date``) and gives an aware
  UTC ``datetime``; values outside Python's year range 1..9999 are a decode error.
* ``date`` -> ISO ``"YYYY-MM-DD"`` string. ``time`` -> ``time.isoformat()`` string.
  ``timedelta`` -> number of milliseconds (int when whole, else float).
* ``Decimal`` -> ``str(d)``; ``UUID`` -> ``str(u)``. (No ``$type`` Decimal: Meteor
  clients only know it with mongo-decimal, E-2.)
* ``bytes``/``bytearray``/``memoryview`` -> ``{"$binary": <standard base64, padded>}``;
  decodes to ``bytes``. Bad base64 (or missing padding) is a decode error.
* ``RegExp(source, flags)`` or ``re.Pattern`` -> ``{"$regexp": ..., "$flags": ...}``.
  Patterns map re.I/re.M/re.S to "i"/"m"/"s" (other flags are dropped; the source is
  sent verbatim although JS syntax differs). Decoding gives a ``RegExp`` and, like
  Meteor, keeps only flags from "gimuy" (so "s" is dropped), cut to 50 characters and
  deduplicated keeping the last occurrence.
* Registered custom classes -> ``{"$type": name, "$value": obj.to_json_value()}``; the
  ``$value`` is passed through unencoded both ways, as Meteor does. An unknown
  ``$type`` (or a factory that raises) is a decode error (E-2).
* Anything else -> TypeError naming the type.

Decode errors raise ``EJSONDecodeError``; malformed JSON text raises
``json.JSONDecodeError`` (both are ``ValueError``s, and distinct). NaN/Infinity
literals are not JSON and are rejected.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn, Protocol, TypeAlias

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

MAX_SAFE_INTEGER = 2**53 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)
# E-1: a JSON object is special only if its key set is exactly one of these.
_SPECIAL_KEYSETS = frozenset(
    frozenset(keys)
    for keys in (["$date"], ["$binary"], ["$InfNaN"], ["$escape"], ["$type", "$value"], ["$regexp", "$flags"])
)
_REGEXP_FLAGS = "gimuy"
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # only found inside JSON strings
_PATTERN_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))


class EJSONDecodeError(ValueError):
    """Valid JSON that is not valid EJSON (bad ``$date``, ``$binary``, unknown ``$type``...)."""


class EJSONType(Protocol):
    """What a class passed to `register_type` must provide.

    ``to_json_value()`` returns a JSON-compatible value, sent as ``$value``; the
    ``from_json`` factory given to `register_type` rebuilds the object from it.
    """

    def to_json_value(self) -> JSONValue: ...


@dataclass(frozen=True)
class RegExp:
    """A JS regular expression carried as ``{"$regexp": source, "$flags": flags}``."""

    source: str
    flags: str = ""


_factories: dict[str, Callable[[Any], Any]] = {}
_names: dict[type, str] = {}


def register_type(name: str, cls: type[EJSONType], from_json: Callable[[Any], Any]) -> None:
    """Encode instances of ``cls`` as ``{"$type": name, ...}`` and decode them with ``from_json``.

    Registering the same pair again just replaces the factory; giving a name or a class
    a second meaning is a ValueError (Meteor's ``addType`` also refuses duplicates).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("EJSON type name must be a non-empty string")
    if not callable(getattr(cls, "to_json_value", None)):
        raise TypeError(f"{cls.__qualname__} has no to_json_value() method")
    current = _names.get(cls)
    if current != name and (current is not None or name in _factories):
        raise ValueError(f"EJSON type {name!r} or class {cls.__qualname__} is already registered")
    _factories[name] = from_json
    _names[cls] = name


def unregister_type(name: str) -> None:
    """Forget custom type ``name`` (mainly for tests); unknown names are ignored."""
    _factories.pop(name, None)
    for cls in [cls for cls, n in _names.items() if n == name]:
        del _names[cls]


# --- encoding -----------------------------------------------------------------


def to_json_value(value: Any) -> JSONValue:
    """EJSON-encode ``value`` into plain dict/list/str/int/float/bool/None (E-3)."""
    t = type(value)
    if t is str or value is None or t is bool:
        return value  # type: ignore[no-any-return]
    if t is int:
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)
    if t is dict:
        return _encode_dict(value)
    if t is list or t is tuple:
        return [to_json_value(item) for item in value]
    if t is float:
        if math.isfinite(value):
            return value  # type: ignore[no-any-return]
        return {"$InfNaN": 0 if math.isnan(value) else 1 if value > 0 else -1}
    for klass in t.__mro__:  # registered classes first, then builtins (and subclasses)
        name = _names.get(klass)
        if name is not None:
            return {"$type": name, "$value": value.to_json_value()}
        encoder = _ENCODERS.get(klass)
        if encoder is not None:
            return encoder(value)
    if isinstance(value, Mapping):
        return _encode_dict(value)
    raise TypeError(f"Object of type {t.__qualname__} is not EJSON serializable")


def _encode_dict(value: Mapping[Any, Any]) -> JSONValue:
    out: dict[str, JSONValue] = {}
    for key, item in value.items():
        if type(key) is not str:
            if not isinstance(key, str):
                raise TypeError(f"EJSON object keys must be str, not {type(key).__qualname__} (E-30)")
            key = str.__str__(key)
        out[key] = to_json_value(item)
    if len(out) <= 2 and frozenset(out) in _SPECIAL_KEYSETS:
        return {"$escape": out}  # E-10: one level only; values were encoded normally
    return out


def _encode_datetime(value: dt.datetime) -> JSONValue:
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=dt.timezone.utc)  # naive is taken as UTC
    return {"$date": (value - _EPOCH) // _MS}


def _encode_timedelta(value: dt.timedelta) -> JSONValue:
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return micros // 1000 if micros % 1000 == 0 else micros / 1000


def _encode_binary(value: bytes | bytearray | memoryview) -> JSONValue:
    return {"$binary": base64.b64encode(value).decode("ascii")}


def _encode_pattern(value: re.Pattern[Any]) -> JSONValue:
    if not isinstance(value.pattern, str):
        raise TypeError("EJSON cannot encode a bytes regular expression")
    flags = "".join(letter for flag, letter in _PATTERN_FLAGS if value.flags & flag)
    return {"$regexp": value.pattern, "$flags": flags}


def _reject_set(value: Any) -> NoReturn:
    raise TypeError(f"Object of type {type(value).__qualname__} is not EJSON serializable; use a list (E-30)")


_ENCODERS: dict[type, Callable[[Any], JSONValue]] = {
    dt.datetime: _encode_datetime,
    dt.date: lambda value: value.isoformat(),
    dt.time: lambda value: value.isoformat(),
    dt.timedelta: _encode_timedelta,
    bytes: _encode_binary,
    bytearray: _encode_binary,
    memoryview: _encode_binary,
    Decimal: str,
    uuid.UUID: str,
    RegExp: lambda value: {"$regexp": value.source, "$flags": value.flags},
    re.Pattern: _encode_pattern,
    set: _reject_set,
    frozenset: _reject_set,
    # subclasses of the fast-path types (str/int/float enums, OrderedDict, ...)
    str: str.__str__,
    int: lambda value: to_json_value(int.__int__(value)),
    float: lambda value: to_json_value(float.__float__(value)),
    dict: _encode_dict,
    list: lambda value: [to_json_value(item) for item in value],
    tuple: lambda value: [to_json_value(item) for item in value],
}


# --- decoding -----------------------------------------------------------------


def from_json_value(obj: JSONValue) -> Any:
    """Decode a JSON value (as from ``json.loads``) into Python values (E-1, E-3, E-11)."""
    if type(obj) is dict:
        return _decode_dict(obj)
    if type(obj) is list:
        return [from_json_value(item) for item in obj]
    if type(obj) is int and not -MAX_SAFE_INTEGER <= obj <= MAX_SAFE_INTEGER:
        try:  # a JS sender meant the (rounded) float, and so will a JS receiver
            return float(obj)
        except OverflowError:
            return math.inf if obj > 0 else -math.inf
    return obj


def _decode_dict(obj: dict[str, JSONValue]) -> Any:
    size = len(obj)
    if size == 1:
        if "$date" in obj:
            return _decode_date(obj["$date"])
        if "$binary" in obj:
            return _decode_binary(obj["$binary"])
        if "$InfNaN" in obj:
            sign = obj["$InfNaN"]
            if type(sign) is not int and type(sign) is not float:
                raise EJSONDecodeError(f"$InfNaN must be a number, not {sign!r}")
            return math.inf if sign > 0 else -math.inf if sign < 0 else math.nan
        if "$escape" in obj:
            inner = obj["$escape"]
            if type(inner) is not dict:
                raise EJSONDecodeError("$escape must hold an object")
            return {key: from_json_value(item) for key, item in inner.items()}
    elif size == 2:
        if "$type" in obj and "$value" in obj:
            return _decode_custom(obj["$type"], obj["$value"])
        if "$regexp" in obj and "$flags" in obj:
            source, flags = obj["$regexp"], obj["$flags"]
            if type(source) is not str or type(flags) is not str:
                raise EJSONDecodeError("$regexp and $flags must be strings")
            kept = [c for c in flags[:50] if c in _REGEXP_FLAGS]
            return RegExp(source, "".join(c for i, c in enumerate(kept) if c not in kept[i + 1 :]))
    return {key: from_json_value(item) for key, item in obj.items()}


def _decode_date(ms: JSONValue) -> dt.datetime:
    if type(ms) is int:
        whole = ms
    elif type(ms) is float and math.isfinite(ms):
        whole = math.trunc(ms)  # JS Date keeps whole milliseconds, truncated
    else:
        raise EJSONDecodeError(f"$date must be a number of milliseconds, not {ms!r}")
    try:
        return _EPOCH + dt.timedelta(milliseconds=whole)
    except OverflowError:
        raise EJSONDecodeError(f"$date {ms!r} is out of range") from None


def _decode_binary(text: JSONValue) -> bytes:
    if type(text) is not str:
        raise EJSONDecodeError("$binary must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EJSONDecodeError(f"$binary is not valid base64: {exc}") from None


def _decode_custom(name: JSONValue, value: JSONValue) -> Any:
    factory = _factories.get(name) if type(name) is str else None
    if factory is None:
        raise EJSONDecodeError(f"Custom EJSON type {name!r} is not defined")
    try:
        return factory(value)
    except Exception as exc:  # a factory rejecting its input makes the input invalid
        raise EJSONDecodeError(f"Custom EJSON type {name!r} rejected its value: {exc}") from exc


# --- text, equality -----------------------------------------------------------


def dumps(value: Any, *, canonical: bool = False) -> str:
    """EJSON text with compact separators; ``canonical`` sorts keys and prints numbers like JS (E-21).

    Non-ASCII text is kept as is, except lone surrogates, which are escaped as JS's
    ``JSON.stringify`` does, so the result can always be encoded as UTF-8.
    """
    encoded = to_json_value(value)
    if canonical:
        text = _canonical(encoded)
    else:
        text = json.dumps(encoded, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return text
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _reject_constant(name: str) -> NoReturn:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def loads(text: str | bytes) -> Any:
    """Parse EJSON text. Bad JSON raises json.JSONDecodeError, bad EJSON EJSONDecodeError."""
    return from_json_value(json.loads(text, parse_constant=_reject_constant))


def _canonical(obj: JSONValue) -> str:
    if type(obj) is dict:
        items = sorted(obj.items(), key=_utf16_key)
        return "{" + ",".join(_canonical(k) + ":" + _canonical(v) for k, v in items) + "}"
    if type(obj) is list:
        return "[" + ",".join(_canonical(item) for item in obj) + "]"
    if type(obj) is float:
        return _js_number(obj)
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _utf16_key(item: tuple[str, Any]) -> bytes:
    # JS sorts strings by UTF-16 code units; big-endian UTF-16 bytes sort the same way.
    return item[0].encode("utf-16-be", "surrogatepass")


def _js_number(value: float) -> str:
    """Format a finite float like JS ``String(number)`` (ECMAScript Number::toString)."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    k = len(digits)
    n = int(exponent) + k  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        out = text + "0" * (n - k)
    elif 0 < n <= 21:
        out = text[:n] + "." + text[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * -n + text
    else:
        mantissa = text if k == 1 else text[0] + "." + text[1:]
        out = f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return "-" + out if sign else out


def equals(a: Any, b: Any) -> bool:
    """EJSON equality (E-22): equal encodings, ignoring key order, 1 == 1.0, nan == nan.

    Datetimes compare by millisecond, bytes by value; ``True`` is not ``1``. Values that
    cannot be encoded raise TypeError.
    """
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int or ta is bool or a is None):
        return bool(a == b)  # fast path for the common scalar field values
    if a is b:
        return True
    return _json_equals(to_json_value(a), to_json_value(b))


def _json_equals(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is dict:
        if tb is not dict or len(a) != len(b):
            return False
        return all(key in b and _json_equals(item, b[key]) for key, item in a.items())
    if ta is list:
        return tb is list and len(a) == len(b) and all(map(_json_equals, a, b))
    if ta in (int, float) and tb in (int, float):  # exact types: True is not 1
        return bool(a == b)
    return ta is tb and bool(a == b)
