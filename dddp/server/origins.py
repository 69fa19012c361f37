"""Which hosts and browser pages may use the server, and when a request's cookies count.

A WebSocket has no same-origin policy, and SockJS answers cross-origin XHR
with CORS: without checks, any web page a user visits could open a DDP
connection from the user's browser (cross-site WebSocket hijacking). The
page would then act with whatever the browser holds for this server (its
cookies; its network position, say inside an intranet) and read the answers.
Django's own pages are protected from this by the browser's same-origin
policy, CSRF checks and `ALLOWED_HOSTS`. The same rules, here:

- The Host header is checked against `ALLOWED_HOSTS` exactly as Django
  checks it (`HttpRequest.get_host`: `USE_X_FORWARDED_HOST`, and in DEBUG
  with no `ALLOWED_HOSTS` the localhost names): a page of another site that
  reached this server through DNS rebinding names its own host.
- A browser names the page's origin (the Origin header; browsers always send
  one with a WebSocket handshake and with a cross-origin request). A
  connection from a page is accepted only from an origin Django trusts (the
  site's own, scheme and host; `CSRF_TRUSTED_ORIGINS`) or one listed in
  `DDDP_ALLOWED_ORIGINS` (`"*"` for any, as Meteor's own server does). A
  client that is not a web page (a native app, a Node or Python DDP
  client) sends no Origin and is accepted: it is no browser acting for
  another site.
- Cookies (and so Django's session) count only for a request whose origin
  Django trusts: `DDDP_ALLOWED_ORIGINS` lets a page connect, never lets it
  use the user's cookies. A WebSocket upgrade without an Origin is no
  browser page and keeps its cookies; an HTTP request without one (a
  script or iframe a page loads: the SockJS jsonp and htmlfile transports)
  counts as trusted only when its Referer names a trusted origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

#: In DDDP_ALLOWED_ORIGINS: pages of any origin may connect (never with cookies).
ANY_ORIGIN = "*"


class Refusal(Exception):
    """A request the policy refuses: `status` and a plain `text` say why."""

    def __init__(self, status: str, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


class OriginPolicy:
    """The Host and Origin checks of one server; Django's settings are read at each check."""

    def __init__(self, allowed_origins: Sequence[str]):
        """`allowed_origins`: DDDP_ALLOWED_ORIGINS (origins such as "https://app.example.com",
        "https://*.example.com" for its subdomains, "null", or "*")."""
        self.any_origin = ANY_ORIGIN in allowed_origins
        self._allowed = _Origins(origin for origin in allowed_origins if origin != ANY_ORIGIN)

    def check(self, environ: dict[str, Any]) -> None:
        """Raise Refusal unless the request's Host and its page's origin are allowed."""
        request = _Request(environ)
        try:
            request.get_host()
        except DisallowedHost:
            host = _quoted(str(environ.get("HTTP_HOST", "")))
            raise Refusal("400 Bad Request", f"Invalid Host header {host}: not in ALLOWED_HOSTS\n") from None
        origin = _page_origin(environ)
        if origin is None or self.any_origin or origin in self._allowed:
            return
        if not _trusted_by_django(request, origin):
            raise Refusal(
                "403 Forbidden", f"Origin {_quoted(origin)} is not allowed (see DDDP_ALLOWED_ORIGINS)\n"
            )

    def trusts_cookies(self, environ: dict[str, Any]) -> bool:
        """Whether the request's cookies may stand for its user (see the module's docstring)."""
        origin = _page_origin(environ)
        if origin is None:
            return environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        return _trusted_by_django(_Request(environ), origin)


class _Origins:
    """A set of origins: exact ones, and "scheme://*.domain" patterns for subdomains."""

    def __init__(self, origins: Any):
        self.exact: set[str] = set()
        self.subdomains: dict[str, list[str]] = {}
        for origin in origins:
            if "://*" in origin:
                scheme, _, netloc = origin.partition("://")
                self.subdomains.setdefault(scheme, []).append(netloc[1:])  # ".example.com"
            else:
                self.exact.add(origin)

    def __contains__(self, origin: str) -> bool:
        if origin in self.exact:
            return True
        if not self.subdomains:
            return False
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return any(is_same_domain(parts.netloc, pattern) for pattern in self.subdomains.get(parts.scheme, ()))


class _Request(HttpRequest):  # type: ignore[misc]
    """Just enough of a request for Django's own `get_host` and `is_secure`, which read
    nothing of it but `META`. (HttpRequest's own __init__, which makes the GET, POST,
    COOKIES and FILES it would never use, was a tenth of a WebSocket upgrade's cost.)"""

    def __init__(self, environ: dict[str, Any]):  # (no super().__init__: see above)
        self.META = environ

    def _get_scheme(self) -> str:
        return str(self.META.get("wsgi.url_scheme", "http"))


def _page_origin(environ: dict[str, Any]) -> str | None:
    """The origin of the page that made the request, as the browser says it, or None."""
    origin = environ.get("HTTP_ORIGIN")
    if origin:
        return str(origin)
    referer = environ.get("HTTP_REFERER")
    if referer and environ.get("HTTP_UPGRADE", "").lower() != "websocket":
        try:
            parts = urlsplit(referer)
        except ValueError:
            return "null"
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
    return None


def _trusted_by_django(request: _Request, origin: str) -> bool:
    """Django's CSRF origin rule (CsrfViewMiddleware): the site's own origin, or CSRF_TRUSTED_ORIGINS."""
    try:
        host = request.get_host()
    except DisallowedHost:
        return False
    if origin == f"{'https' if request.is_secure() else 'http'}://{host}":
        return True
    return origin in _Origins(getattr(settings, "CSRF_TRUSTED_ORIGINS", ()))


def _quoted(value: str) -> str:
    """Client input in a response or log: bounded, and printable."""
    text = value if len(value) <= 100 else value[:97] + "..."
    return repr(text)
