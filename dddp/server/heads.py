"""Request heads as the short ways through HTTP read them: strictly, into a small environ.

pywsgi builds a request's environ in full and parses its headers with the
email package: about 150 µs of CPU a request on this project's machine, the
most of what a SockJS poll or a WebSocket upgrade costs the server. The
short ways (`dddp.server.polling`, `dddp.server.upgrades`) parse the head
here instead, and take only what this parser fully understands: one request
line `METHOD TARGET HTTP/1.x` and well-formed headers, none repeated, no
folded line, at most MAX_HEADERS. Anything else is theirs to leave to pywsgi,
which answers it (or refuses it) as it always has.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

#: Header names as RFC 9110 spells a token.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
MAX_HEADERS = 100


class Head(NamedTuple):
    method: bytes
    target: bytes
    version: bytes  # b"HTTP/1.1" or b"HTTP/1.0"
    headers: dict[str, str]  # by lowercase name, values stripped of spaces and tabs


def parse_head(head: bytes) -> Head | None:
    """The request line and headers that are all of `head` (up to the blank line, which it
    leaves out); None for anything this module does not fully understand."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") or not parts[0] or not parts[1]:
        return None
    headers: dict[str, str] = {}
    lines = rest.split(b"\r\n") if rest else []
    if len(lines) > MAX_HEADERS:
        return None
    for header in lines:
        name, colon, value = header.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return None  # a folded line, a space before the colon: pywsgi's to judge
        key = name.lower().decode("latin-1")
        if key in headers:
            return None
        headers[key] = value.strip(b" \t").decode("latin-1")
    return Head(parts[0], parts[1], parts[2], headers)


def small_environ(
    server_environ: dict[str, Any],
    method: str,
    path: str,
    version: str,
    address: Any,
    headers: dict[str, str],
) -> dict[str, Any]:
    """The environ of a request without a query string or body: what the WSGI side reads of
    it (pywsgi's own keys and one HTTP_* key per header), for a request from `address`."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": version,
        "SERVER_NAME": server_environ.get("SERVER_NAME", ""),  # for a request without Host
        "SERVER_PORT": server_environ.get("SERVER_PORT", ""),
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": str(address[0]) if isinstance(address, tuple) else "",
        "REMOTE_PORT": str(address[1]) if isinstance(address, tuple) else "",
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ
