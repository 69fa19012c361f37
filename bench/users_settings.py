"""Django settings of the logged-in users benchmark (`bench/users.py`): the live-data
benchmark's, with Django's users and dddp.accounts.

The database is `$DATABASE_URL` when set (users.py sets it for every process
it starts), else an embedded PostgreSQL of its own under /tmp.
"""

from dddp.database import database_settings

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False  # DEBUG would keep every query in memory
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "dddp",
    "dddp.accounts",
    "live_app",
    "users_app",
]
DATABASES = {"default": database_settings("/tmp/dddp-users-pgdata")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
PASSWORD_HASHERS = ["dddp.accounts.hashers.MeteorPBKDF2PasswordHasher"]

# As live_settings: no heartbeat pings among the data, no client dropped for a backlog.
DDDP_HEARTBEAT_INTERVAL = 0
DDDP_MAX_SEND_QUEUE_BYTES = 1 << 30
# 1,000 observers of a per-user publication, and their logins.
DDDP_MAX_OBSERVERS = 20_000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"dddp": {"level": "INFO"}},
}
