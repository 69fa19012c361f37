"""The tests' settings with a custom user model (tests.customusersapp.Member) in place of
Django's: dddp.accounts against a model whose username is its email and whose key is a
Meteor id. Used by tests/accounts/test_custom_user_model.py, on a database of its own."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.customusersapp"]  # noqa: F405
AUTH_USER_MODEL = "customusersapp.Member"
