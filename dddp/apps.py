"""The `dddp` Django app: registers system checks and imports every app's `ddp.py`."""

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class DDDPConfig(AppConfig):
    name = "dddp"
    verbose_name = "Django DDP"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dddp import checks  # noqa: F401  (registers the checks)

        # Each installed app declares its collections, publications and methods
        # in ddp.py, as admin.py declares admin classes.
        autodiscover_modules("ddp")
