"""The SockJS wire format, without I/O: paths, frames, payloads and headers (section 3).

The server's SockJS transports (dddp/server/) do the I/O and keep the sessions;
this module decides what the bytes look like. It follows sockjs-node 0.3.x,
which Meteor's server runs, and the sockjs-protocol test suite (table 3.5).

Client texts: every payload parser returns the DDP message texts in order, or
raises `RequestError` carrying the exact text the HTTP layer answers with
status 500 (or, on a websocket, the close reason). Lone surrogates (`"\\ud800"`)
are accepted and kept as surrogate code points, as sockjs-node (UCS-2) does:
browsers send them, and the JSONEncoding suite echoes every `\\uXXXX` back.
Frames the server builds are pure ASCII, so they always encode; a caller that
encodes a client text to UTF-8 elsewhere must expect surrogates.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args
from urllib.parse import parse_qs

Headers = list[tuple[str, str]]

# --- close codes (S-14, S-11) ---------------------------------------------------

CLOSE_GO_AWAY = (3000, "Go away!")
CLOSE_ANOTHER_CONNECTION = (2010, "Another connection still open")
CLOSE_INTERRUPTED = (1002, "Connection interrupted")
CLOSE_NORMAL = (1000, "Normal closure")
CLOSE_BROKEN_FRAMING = (3000, "Broken framing.")
# Not sockjs-node's: dddp refuses a new HTTP session past its per-address limit.
CLOSE_TOO_MANY_SESSIONS = (3000, "Too many sessions from this address")

# --- errors answered with status 500 (table 3.2) --------------------------------

PAYLOAD_EXPECTED = "Payload expected."
BROKEN_JSON = "Broken JSON encoding."
CALLBACK_REQUIRED = '"callback" parameter required'
CALLBACK_INVALID = 'invalid "callback" parameter'


class RequestError(Exception):
    """The client sent something SockJS refuses: answer 500 with `text` as the body.

    From `parse_websocket_payload`, `text` is the close reason of CLOSE_BROKEN_FRAMING.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


# --- paths (S-15, table 3.2) ----------------------------------------------------

Transport = Literal[
    "websocket",
    "xhr",
    "xhr_send",
    "xhr_streaming",
    "eventsource",
    "htmlfile",
    "jsonp",
    "jsonp_send",
]
TRANSPORTS: frozenset[str] = frozenset(get_args(Transport))

EndpointKind = Literal["greeting", "info", "iframe", "raw_websocket", "session"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a path under the SockJS prefix names; the ids are set only for "session"."""

    kind: EndpointKind
    server_id: str = ""
    session_id: str = ""
    transport: Transport | None = None


# sockjs-node's route patterns, with the dot before "html" escaped (its own
# pattern lets "/iframeXhtml" through). Case matters: "/IFRAME.HTML" is a 404.
_IFRAME = re.compile(r"/iframe[0-9a-z_.-]*\.html")
# A segment is anything but "/" and ".": the suite requires "/a./a" and "/./."
# to be 404s, and sockjs-client never puts a dot in its ids.
_SESSION = re.compile(r"/([^/.]+)/([^/.]+)/([a-z_]+)")
_FIXED: dict[str, Endpoint] = {
    "": Endpoint("greeting"),
    "/info": Endpoint("info"),
    "/websocket": Endpoint("raw_websocket"),
}


def parse_path(path: str) -> Endpoint | None:
    """The endpoint `path` (the part after the prefix, no query string) names, or None: 404.

    As sockjs-node, every route also matches with one trailing slash ("/", "/info/");
    Meteor's own server relies on it for "/websocket/" (S-4).
    """
    if path.endswith("/"):
        path = path[:-1]
    fixed = _FIXED.get(path)
    if fixed is not None:
        return fixed
    if _IFRAME.fullmatch(path):
        return Endpoint("iframe")
    match = _SESSION.fullmatch(path)
    if match is None or match[3] not in TRANSPORTS:
        return None
    server_id, session_id, transport = match.groups()
    return Endpoint("session", server_id, session_id, cast(Transport, transport))


# --- frames, server to client (S-10, S-16) --------------------------------------

OPEN = "o"
HEARTBEAT = "h"


def messages_frame(texts: Sequence[str]) -> str:
    """The `a[...]` frame carrying `texts` (at least one), each as a JSON string.

    ensure_ascii escapes every character S-16 requires (and all other non-ASCII
    ones, which SockJS allows) with lowercase `\\uXXXX`, as the suite compares;
    one C-level json.dumps call over the whole list is the cheapest way to build it.
    """
    if not texts:
        raise ValueError("a messages frame needs at least one text")
    return "a" + json.dumps(list(texts), ensure_ascii=True, separators=(",", ":"))


def close_frame(code: int, reason: str) -> str:
    """The `c[code,"reason"]` frame (S-14)."""
    return "c" + json.dumps([code, reason], ensure_ascii=True, separators=(",", ":"))


# --- per-transport framing of one frame (table 3.2) -----------------------------

# Enough bytes for browsers to start handing a streamed XHR to the page.
XHR_STREAMING_PRELUDE = "h" * 2048 + "\n"
EVENTSOURCE_PRELUDE = "\r\n"

_HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"""
# Safari renders nothing of a streamed page before its first 1024 bytes, so the
# head is padded with spaces; sockjs-node pads it to 1037 characters before the
# callback is substituted, then adds "\r\n\r\n".
_HTMLFILE_PADDING = " " * (1037 - len(_HTMLFILE_HEAD.format(callback="{{ callback }}")))

_CALLBACK = re.compile(r"[a-zA-Z0-9_.-]+")


def validate_callback(callback: str | None) -> str:
    """The jsonp/htmlfile callback name (query parameter `c`), or RequestError.

    Only `[a-zA-Z0-9-_.]` may appear: the name is written into a script unquoted.
    """
    if not callback:
        raise RequestError(CALLBACK_REQUIRED)
    if not _CALLBACK.fullmatch(callback):
        raise RequestError(CALLBACK_INVALID)
    return callback


def xhr_frame(frame: str) -> str:
    """One frame on xhr and xhr_streaming: newline-terminated."""
    return frame + "\n"


def eventsource_frame(frame: str) -> str:
    """One frame as a server-sent event."""
    return "data: " + frame + "\r\n\r\n"


def htmlfile_prelude(callback: str) -> str:
    """The htmlfile page head (over 1 KiB) for a `validate_callback`-checked name."""
    return _HTMLFILE_HEAD.format(callback=callback) + _HTMLFILE_PADDING + "\r\n\r\n"


def htmlfile_frame(frame: str) -> str:
    """One frame as a `<script>` calling the page's `p`.

    "<" is escaped (sockjs-node does not) so that a message containing
    "</script>" cannot end the script element; the JS string is unchanged.
    """
    literal = json.dumps(frame, ensure_ascii=True).replace("<", "\\u003c")
    return "<script>\np(" + literal + ");\n</script>\r\n"


def jsonp_frame(callback: str, frame: str) -> str:
    """One jsonp response body; the `/**/` guards against content sniffing (sockjs-node 0.3.4+)."""
    return "/**/" + callback + "(" + json.dumps(frame, ensure_ascii=True) + ");\r\n"


# --- payloads, client to server (S-11, S-16) ------------------------------------


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(BROKEN_JSON) from None


def _loads(text: str) -> object:
    """json.loads, with every failure (deep nesting included) as BROKEN_JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise RequestError(BROKEN_JSON) from None


def _texts(value: object) -> list[str]:
    """The array `value` as message texts; anything but an array is PAYLOAD_EXPECTED."""
    if not isinstance(value, list):
        raise RequestError(PAYLOAD_EXPECTED)
    if not all(isinstance(item, str) for item in value):
        raise RequestError(BROKEN_JSON)
    return value


def parse_send_body(body: bytes | str) -> list[str]:
    """The message texts of an xhr_send body (a JSON array of strings; `[]` is none).

    Any Content-Type is accepted (the suite sends several). Empty body and
    non-array JSON: PAYLOAD_EXPECTED; bad UTF-8 or JSON, or a non-string item:
    BROKEN_JSON (sockjs-node's order of checks).
    """
    text = _decode(body)
    if not text:
        raise RequestError(PAYLOAD_EXPECTED)
    return _texts(_loads(text))


def parse_jsonp_send_body(body: bytes | str, content_type: str | None) -> list[str]:
    """The message texts of a jsonp_send body: form field `d`, or the raw body.

    A form body (application/x-www-form-urlencoded) without a non-empty `d` is
    PAYLOAD_EXPECTED; otherwise the same rules as `parse_send_body`.
    """
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return parse_send_body(body)
    text = _decode(body)
    try:
        fields = parse_qs(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise RequestError(BROKEN_JSON) from None
    values = fields.get("d")
    if not values or not values[0]:
        raise RequestError(PAYLOAD_EXPECTED)
    return _texts(_loads(values[0]))


def parse_websocket_payload(data: bytes | str) -> list[str]:
    """The message texts of one SockJS websocket frame.

    An array of strings (sockjs-client), or a bare JSON string (sockjs-node
    accepts it); an empty frame or `[]` carries none. Anything else raises
    RequestError: close the session with CLOSE_BROKEN_FRAMING.
    """
    try:
        text = _decode(data)
        if not text:
            return []
        value = _loads(text)
        if isinstance(value, str):
            return [value]
        return _texts(value)
    except RequestError:
        raise RequestError(CLOSE_BROKEN_FRAMING[1]) from None


# --- static documents (table 3.2) -----------------------------------------------

GREETING = "Welcome to SockJS!\n"

_IFRAME_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def info_body(websocket: bool, cookie_needed: bool, entropy: int) -> str:
    """The `/info` document; `entropy` is a fresh random uint32 from the caller."""
    info = {
        "websocket": websocket,
        "origins": ["*:*"],
        "cookie_needed": cookie_needed,
        "entropy": entropy,
    }
    return json.dumps(info, separators=(",", ":"))


def iframe_page(sockjs_url: str) -> str:
    """The iframe page of the sockjs-protocol suite (sockjs-node 0.3.x had an older
    one, with `_sockjs_onload`): it loads the client from `sockjs_url`, then
    calls its `SockJS.bootstrap_iframe()`, which sockjs-client 0.3 and 1.x both have.
    The URL is HTML-escaped ("&" becomes "&amp;", which the browser undoes).
    """
    return _IFRAME_PAGE.format(sockjs_url=html.escape(sockjs_url, quote=True))


def etag(body: str) -> str:
    """A strong ETag for `body`: the same page always gets the same tag."""
    return '"' + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header value lets the server answer 304 for `tag`."""
    if not if_none_match:
        return False
    candidates = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return "*" in candidates or tag in candidates


# --- headers (S-20, S-21) -------------------------------------------------------

ONE_YEAR = 31536000
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"


def cors_headers(origin: str | None) -> Headers:
    """CORS headers for a request with this Origin header value (S-20).

    An Origin (even "null", from file:// pages) is echoed with credentials
    allowed, so that JSESSIONID cookies work; `Vary` keeps shared caches from
    serving one origin's answer to another. Which origins may use cookies is
    the server's decision, not this module's.
    """
    if not origin:
        return [("Access-Control-Allow-Origin", "*")]
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]


_COOKIE_VALUE = re.compile(r"[!#-+\--:<-\[\]-~]+")  # RFC 6265 cookie-octets


def jsessionid_cookie(cookie_header: str | None) -> str:
    """The Set-Cookie value of a session URL when cookie_needed (S-22): the client's
    JSESSIONID echoed (a load balancer's stickiness), else "dummy"."""
    value = "dummy"
    for part in (cookie_header or "").split(";"):
        name, _, candidate = part.strip().partition("=")
        if name == "JSESSIONID" and _COOKIE_VALUE.fullmatch(candidate):
            value = candidate
    return f"JSESSIONID={value}; path=/"


def no_cache_headers() -> Headers:
    """For every receiving transport and /info: nothing may be cached (S-21)."""
    return [("Cache-Control", NO_CACHE)]


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """RFC 9110's IMF-fixdate for a Unix time, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".

    Built by hand: strftime's names follow the locale, and email.utils imports socket.
    """
    t = time.gmtime(seconds)
    weekday, month = _WEEKDAYS[t.tm_wday], _MONTHS[t.tm_mon - 1]
    return f"{weekday}, {t.tm_mday:02d} {month} {t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"


def long_cache_headers(now_seconds: float) -> Headers:
    """Cache for a year: OPTIONS answers and the iframe page (`now_seconds`: Unix time)."""
    return [
        ("Cache-Control", f"public, max-age={ONE_YEAR}"),
        ("Expires", http_date(now_seconds + ONE_YEAR)),
    ]


def options_headers(methods: str, request_headers: str | None) -> Headers:
    """A preflight's answer: `methods` (e.g. "OPTIONS, POST"), echoing the asked-for headers.

    Add `cors_headers` and `long_cache_headers`; the status is 204.
    """
    headers = [
        ("Access-Control-Allow-Methods", methods),
        ("Access-Control-Max-Age", str(ONE_YEAR)),
    ]
    if request_headers:
        headers.append(("Access-Control-Allow-Headers", request_headers))
    return headers
