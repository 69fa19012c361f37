"""The `dddp.accounts` Django app: its token model, checks, and the signals that revoke tokens."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dddp.accounts"
    label = "dddp_accounts"
    verbose_name = "Django DDP accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import dddp.accounts.checks  # noqa: F401  (registers the checks)
        from dddp.accounts import sessions, tokens
        from dddp.api import API

        tokens.connect_signals()
        if sessions.user_id_from_session_cookie not in API.connection_authenticators:
            API.connection_authenticators.append(sessions.user_id_from_session_cookie)
