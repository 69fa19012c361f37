"""What dddp.accounts offers over DDP: Meteor's account methods, and the publications
a Meteor client expects (section 4).

Methods: `login`, `logout`, `getNewToken`, `removeOtherTokens`, `createUser`
(only when DDDP_ACCOUNTS_SIGNUP is true), `changePassword`, `forgotPassword`,
`resetPassword`, and `verifyEmail` (only for a user model with a field to hold
it: dddp.accounts.verification).

Publications:
- the logged-in user's own document in the `users` collection, as a universal
  publication (every session has it, A-20): `username`, `emails` and `profile`,
  never the password's hash or anything else of the user row;
- `meteor.loginServiceConfiguration`: no OAuth services are configured, so it
  is ready and empty, and a Meteor client's `loginServicesConfigured()` is true.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from dddp.accounts import login as accounts
from dddp.accounts import verification
from dddp.api import API, Collection, Publication, method

User: Any = get_user_model()
VERIFIED_FIELD = verification.verified_field(User)


class Users(Collection):
    """The user model as Meteor's `users` collection: only what Meteor's client shows of a user."""

    model = User
    name = "users"

    @classmethod
    def shape(cls, fields: dict[str, Any]) -> dict[str, Any]:
        email_field = User.get_email_field_name()
        email = fields.get(email_field)
        # Django keeps no verification state of its own: without the model's field
        # (DDDP_ACCOUNTS_EMAIL_VERIFIED_FIELD), an address counts as not verified.
        verified = bool(fields.get(VERIFIED_FIELD)) if VERIFIED_FIELD else False
        document: dict[str, Any] = {
            "emails": [{"address": email, "verified": verified}] if email else [],
            "profile": {},
        }
        if User.USERNAME_FIELD != email_field:  # a model whose username is the email has no other
            document["username"] = fields.get(User.USERNAME_FIELD)
        return document


class CurrentUser(Publication):
    """The logged-in user's document (A-20); nothing when logged out."""

    name = "dddp.accounts.current_user"
    universal = True

    def get_queries(self) -> list[Any]:
        if self.user_id is None:
            return []
        return [User._default_manager.filter(pk=self.user_id)]


class LoginServiceConfiguration(Publication):
    """Meteor's `meteor.loginServiceConfiguration` (A-21): no OAuth service, so empty."""

    name = "meteor.loginServiceConfiguration"
    queries = []


API.register(
    [
        Users,
        CurrentUser,
        LoginServiceConfiguration,
        method(accounts.login, name="login", cpu_heavy=accounts.hashes_a_password),
        method(accounts.logout, name="logout"),
        method(accounts.get_new_token, name="getNewToken"),
        method(accounts.remove_other_tokens, name="removeOtherTokens"),
        method(accounts.create_user, name="createUser", cpu_heavy=True),
        method(accounts.change_password, name="changePassword", cpu_heavy=True),
        method(accounts.forgot_password, name="forgotPassword"),
        method(accounts.reset_password, name="resetPassword", cpu_heavy=True),
    ]
)
if VERIFIED_FIELD:  # only a user model with a field to hold it can be verified
    API.register([method(verification.verify_email, name="verifyEmail")])
