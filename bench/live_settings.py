"""Django settings of the live-data benchmark (`bench/live.py`): dddp and the bench app only.

The database is `$DATABASE_URL` when set (live.py sets it for every process
it starts, so all of them share one server), else an embedded PostgreSQL
under /tmp.
"""

from dddp.database import database_settings

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False  # DEBUG would keep every query in memory
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["dddp", "live_app"]
DATABASES = {"default": database_settings("/tmp/dddp-live-pgdata")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# The benchmark measures data messages: no heartbeat pings among them, and no
# client dropped as too slow while the server works through a backlog (the
# backlog, not a disconnection, is what the report shows).
DDDP_HEARTBEAT_INTERVAL = 0
DDDP_MAX_SEND_QUEUE_BYTES = 1 << 30

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"dddp": {"level": "INFO"}},
}
