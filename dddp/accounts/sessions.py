"""A browser logged in to the Django site is logged in over DDP too: by its session cookie.

The server passes a connection's Cookie header on only when the page's origin
is one Django trusts (the site's own, CSRF_TRUSTED_ORIGINS; see
`dddp.server.origins`): a page elsewhere, even one DDDP_ALLOWED_ORIGINS lets
connect, never acts with the user's session (no cross-site WebSocket
hijacking). The session is read as Django reads it for a request
(`django.contrib.auth.get_user`), so a session Django would refuse (expired,
or made before the user's password changed) logs nobody in.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.conf import settings
from django.http.cookie import parse_cookie


def user_id_from_session_cookie(http_headers: dict[str, str]) -> Any:
    """The id of the user whose Django session the connection's cookie names, or None."""
    cookie = http_headers.get("cookie")
    if not cookie or not apps.is_installed("django.contrib.sessions"):
        return None
    session_key = parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    from django.contrib.auth import get_user

    engine = import_module(settings.SESSION_ENGINE)
    request = SimpleNamespace(session=engine.SessionStore(session_key))  # what get_user reads
    user = get_user(request)  # type: ignore[arg-type]
    return user.pk if user.is_authenticated else None


#: The headers it reads: a connection without them is not handed to a worker for it.
user_id_from_session_cookie.headers = ("cookie",)  # type: ignore[attr-defined]
