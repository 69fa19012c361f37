"""Settings of the bookstore example: the brief's bookstore served by dddp.

The database is `$DATABASE_URL` when set, else an embedded PostgreSQL whose
data lives in example/pgdata (created on first start, kept across restarts).
What changes in production comes from the environment, as
docs/production.rst advises: DJANGO_DEBUG (on unless "0"), DJANGO_SECRET_KEY,
DJANGO_ALLOWED_HOSTS (comma-separated), DDDP_ALLOWED_ORIGINS (the same),
DJANGO_STATIC_ROOT and DJANGO_TLS_PROXY.
"""

import os
from pathlib import Path

from dddp.database import database_settings

EXAMPLE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in ("1", "true", "yes", "on")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
# The brief's Meteor app, served by Meteor's development server, connects from its origin.
DDDP_ALLOWED_ORIGINS = os.environ.get(
    "DDDP_ALLOWED_ORIGINS", "http://localhost:3000,http://127.0.0.1:3000"
).split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "dddp",
    "dddp.accounts",  # Meteor's login, logout and createUser against these users
    "bookstore",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files with DEBUG off: after SecurityMiddleware, whose headers
    # files get too, and before the rest, which has nothing to do for a file.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# ATOMIC_REQUESTS: each view's writes and their NOTIFYs commit together, so
# subscribers see concurrent saves of one row in the order they were made.
DATABASES = {"default": {**database_settings(EXAMPLE_DIR / "pgdata"), "ATOMIC_REQUESTS": True}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A Meteor client sends a password's SHA-256, never the password: this hasher
# first, so that passwords set in the admin or by createsuperuser check against
# it (docs/accounts.rst); Django's own after it, for hashes made before.
PASSWORD_HASHERS = [
    "dddp.accounts.hashers.MeteorPBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

USE_TZ = True
TIME_ZONE = "UTC"

# Static files (the admin's CSS and scripts). dddp serves them itself only
# under DEBUG, as runserver does; with DEBUG off WhiteNoise serves them. In
# production they are collected once, `DJANGO_STATIC_ROOT=/path manage.py
# collectstatic`, and WhiteNoise serves that folder under hashed, compressed
# names that browsers may cache forever. Without DJANGO_STATIC_ROOT, WhiteNoise
# finds the same files in the apps at start-up instead, so that a fresh
# checkout works with DEBUG off and no collectstatic step (slower to start,
# and no hashed names: fine for an example, not for a site).
STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or None
if STATIC_ROOT:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
else:
    WHITENOISE_USE_FINDERS = True

# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (the nginx
# configuration of docs/production.rst), Django must believe it to know a
# request is https (CSRF checks of the admin's forms compare origins). Only
# there: without such a proxy, any client could send the header.
if os.environ.get("DJANGO_TLS_PROXY") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"dddp": {"handlers": [], "level": "INFO"}},
}
