"""Settings for dddp's own tests: the test app, a real PostgreSQL, and tunable DDDP_*.

The database is `$DATABASE_URL` when set, else an embedded PostgreSQL kept in
the temp folder between runs. Server processes started by the tests get their
DDDP_* settings from environment variables of the same names, so one test can
start a server with, say, a 0.2 s heartbeat.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import django

from dddp.conf import DEFAULTS
from dddp.database import database_settings

SECRET_KEY = "tests-only"
DEBUG = False
# A test's server may have other hosts (or trusted origins) than any.
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",")
CSRF_TRUSTED_ORIGINS = [item for item in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if item]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "dddp",
    "dddp.accounts",
    "tests.testapp",
    "tests.accountsapp",
    "tests.typesapp",
]
if django.VERSION >= (5, 0):  # database defaults (db_default) arrived in Django 5.0
    INSTALLED_APPS.append("tests.defaultsapp")
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.testapp.urls"
# One embedded server per checkout (two checkouts' runs would drop each other's
# test database); DDDP_TEST_PGDATA chooses the folder, e.g. one per tox environment.
_CHECKOUT = hashlib.sha256(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:12]
EMBEDDED_PGDATA = (
    os.environ.get("DDDP_TEST_PGDATA") or Path(tempfile.gettempdir()) / f"dddp-tests-{_CHECKOUT}"
)
DATABASES = {"default": database_settings(EMBEDDED_PGDATA)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Meteor clients send a password's SHA-256: its hasher first (dddp.accounts), with few
# rounds, since the tests log in hundreds of times; Django's own after it, for old hashes.
PASSWORD_HASHERS = [
    "tests.accountsapp.hashers.FastMeteorPBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]
# A server started by a test may write its mails to files the test reads.
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("DJANGO_EMAIL_FILE_PATH")

for _name, (_default, _meaning) in DEFAULTS.items():
    _value = os.environ.get(f"DDDP_{_name}")
    if _value is not None:
        if isinstance(_default, list):  # a JSON list (DDDP_RATE_LIMITS), or comma-separated texts
            _value = (
                json.loads(_value) if _value.startswith("[") else [item for item in _value.split(",") if item]
            )
        elif not isinstance(_default, str):
            _value = type(_default)(float(_value))
        globals()[f"DDDP_{_name}"] = _value

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
}
