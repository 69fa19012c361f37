"""Django settings of the observers benchmark (`bench/observers.py`): the live-data
benchmark's, with `observers_app`.

The database is `$DATABASE_URL` when set (observers.py sets it for every process
it starts), else an embedded PostgreSQL of its own under /tmp.
"""

from dddp.database import database_settings

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False  # DEBUG would keep every query in memory
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["dddp", "live_app", "observers_app"]
DATABASES = {"default": database_settings("/tmp/dddp-observers-pgdata")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# As live_settings: no heartbeat pings among the data, no client dropped for a backlog.
DDDP_HEARTBEAT_INTERVAL = 0
DDDP_MAX_SEND_QUEUE_BYTES = 1 << 30
# 10,000 observers, one per client.
DDDP_MAX_OBSERVERS = 20_000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"dddp": {"level": "INFO"}},
}
