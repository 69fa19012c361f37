"""dddp's settings: `DDDP_*` names in the Django settings, with their defaults here.

Read them as `dddp_settings.MAX_MESSAGE_SIZE`; the value comes from
`settings.DDDP_MAX_MESSAGE_SIZE` when the project sets it. Values are read on
each access so tests can override them with Django's `override_settings`.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

#: Every setting dddp reads, with its safe default and a one-line meaning.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "MAX_MESSAGE_SIZE": (
        1024 * 1024,
        "largest DDP message, in bytes, a client may send; a larger one closes its connection (1009)",
    ),
    "MAX_SEND_QUEUE_BYTES": (
        16 * 1024 * 1024,
        "bytes queued for one client before it counts as too slow and is disconnected",
    ),
    "MAX_PARAMS_SIZE": (
        64 * 1024,
        "characters of JSON a sub's or method's params may take; more get nosub, or a result, with a 413",
    ),
    "MAX_PENDING_REQUESTS": (
        100,
        "requests (methods, subs, unsubs) of one connection received and not yet answered before "
        "the server reads no more from it, until half are done (backpressure)",
    ),
    "MAX_SUBSCRIPTIONS": (
        1000,
        "subscriptions one connection may hold at once; more get nosub with a 429 error",
    ),
    "MAX_OBSERVERS_PER_CONNECTION": (
        20,
        "distinct queries (publication and parameters) one connection may subscribe to at once; "
        "more get nosub with a 429 error",
    ),
    "MAX_OBSERVERS": (
        10000,
        "distinct queries one server process observes at once; a subscription needing another "
        "gets nosub with a 503 error",
    ),
    "HEARTBEAT_INTERVAL": (
        15.0,
        "seconds of client silence before the server pings it (D-22); 0 disables",
    ),
    "HEARTBEAT_TIMEOUT": (
        15.0,
        "seconds to wait for any message after a server ping before closing (D-22)",
    ),
    "REQUEST_HEAD_TIMEOUT": (
        10.0,
        "seconds a client has to send an HTTP request's whole head (request line and headers), "
        "from its connection's opening or, on a kept-alive one, from the request's first byte",
    ),
    "REQUEST_BODY_TIMEOUT": (
        10.0,
        "seconds an HTTP request's body (a form, an upload, a SockJS send) may go without a byte "
        "arriving, and its response without the client taking a byte, before the connection is closed",
    ),
    "CONNECT_TIMEOUT": (
        10.0,
        "seconds a new DDP session (WebSocket or SockJS) has to receive the client's connect "
        "message before it is closed",
    ),
    "METHOD_WORKERS": (
        8,
        "methods run at once per server process; each worker holds one database connection",
    ),
    "SOCKJS_HEARTBEAT_DELAY": (
        25.0,
        "seconds an idle SockJS poll waits before it answers with a heartbeat frame (S-12)",
    ),
    "SOCKJS_DISCONNECT_DELAY": (
        60.0,
        "seconds a SockJS polling session lives without a poll before it ends (S-13)",
    ),
    "SOCKJS_RESPONSE_LIMIT": (
        128 * 1024,
        "bytes a SockJS streaming response (xhr-streaming, eventsource, htmlfile) carries before "
        "it ends and the client opens the next, so that the browser frees what it received",
    ),
    "SOCKJS_MAX_SESSIONS_PER_ADDRESS": (
        100,
        "SockJS sessions over HTTP (polling, streaming) one client address may hold at once; "
        "0 for no limit (behind a proxy every client has the proxy's address)",
    ),
    "SOCKJS_PREFIX": (
        "/sockjs",
        "path under which SockJS is served; Meteor clients append /sockjs to their DDP URL (S-1)",
    ),
    "SOCKJS_URL": (
        "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js",
        "URL of the SockJS client that the iframe page loads: of the major version your Meteor "
        "app bundles (1.6.1 for current Meteor; a 0.3.4 build for Meteor 1.x apps)",
    ),
    "ALLOWED_ORIGINS": (
        [],
        "origins of web pages, besides those Django trusts (the site's own, CSRF_TRUSTED_ORIGINS), "
        'that may connect ("https://app.example.com", "https://*.example.com", "null"; "*" for any); '
        "their cookies never count",
    ),
    "LOGIN_EXPIRATION_DAYS": (
        90.0,
        "days a resume token from a login lasts (dddp.accounts; Meteor's loginExpirationInDays)",
    ),
    "ACCOUNTS_SIGNUP": (
        False,
        "switch that lets clients create users with Meteor's createUser (dddp.accounts)",
    ),
    "ACCOUNTS_AMBIGUOUS_ERRORS": (
        True,
        "switch that makes every failed login 403 'Something went wrong. Please check your "
        "credentials.', as in Meteor 3, rather than saying whether the user exists (dddp.accounts)",
    ),
    "PASSWORD_HASHING_THREADS": (
        max(1, (os.cpu_count() or 2) - 1),
        "password hashes (checks, new passwords) computed at once per server process, each in a "
        "thread of its own, off the event loop (dddp.accounts); default: one less than the CPUs",
    ),
    "PASSWORD_RESET_URL": (
        "",
        "the link a forgotPassword mail gives, with {token} where the reset token goes, such as "
        '"https://app.example.com/#/reset-password/{token}" (Meteor\'s); empty: the mail gives the token '
        "(dddp.accounts)",
    ),
    "ACCOUNTS_EMAIL_VERIFIED_FIELD": (
        "email_verified",
        "the user model's BooleanField that holds whether its email is verified; with it, "
        "verifyEmail is offered and the users document's emails[].verified shows it (dddp.accounts)",
    ),
    "ACCOUNTS_SEND_VERIFICATION_EMAIL": (
        False,
        "switch that makes createUser mail a verification link to the new user's address, as "
        "Meteor's Accounts.config({sendVerificationEmail: true}) (dddp.accounts)",
    ),
    "VERIFY_EMAIL_URL": (
        "",
        "the link a verification mail gives, with {token} where the token goes, such as "
        '"https://app.example.com/#/verify-email/{token}" (Meteor\'s); empty: the mail gives the token '
        "(dddp.accounts)",
    ),
    "RATE_LIMITS": (
        [],
        "rules limiting how often methods and subscriptions may be called, as Meteor's "
        'DDPRateLimiter: dicts such as {"type": "method", "name": "add_book", "user_id": True, '
        '"requests": 10, "interval": 1.0} (dddp.rate_limits)',
    ),
    "LOGIN_FAILURES": (
        5,
        "failed password logins allowed per connection, and per account, in each "
        "DDDP_LOGIN_FAILURES_INTERVAL; more get too-many-requests (dddp.accounts)",
    ),
    "LOGIN_FAILURES_INTERVAL": (
        10.0,
        "seconds of each window in which DDDP_LOGIN_FAILURES are counted (dddp.accounts)",
    ),
    "SHUTDOWN_TIMEOUT": (
        10.0,
        "seconds a graceful shutdown waits for running methods before closing sockets",
    ),
}


class DDDPSettings:
    """Attribute access to the `DDDP_*` settings, falling back to `DEFAULTS`."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"dddp has no setting named {name!r}")
        return getattr(settings, f"DDDP_{name}", DEFAULTS[name][0])


dddp_settings = DDDPSettings()
