"""The account methods of Meteor's `accounts-base` and `accounts-password` (section 4).

Each function here is the body of a DDP method of the same Meteor name
(registered in `dddp.accounts.ddp`); `this` is the method's invocation. They
run in the method's transaction: a login that fails half-way stores nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from dddp.accounts import mailed_tokens, tokens, verification
from dddp.accounts.passwords import (
    Password,
    check_password,
    encoded_password,
    has_password,
    parse_password,
    waste_a_check,
)
from dddp.conf import dddp_settings
from dddp.documents import document_id, document_pk
from dddp.methods import MethodInvocation
from dddp.protocol.errors import MeteorError, match_failed
from dddp.rate_limits import FixedWindowCounts, too_many_requests

#: Meteor 3's one text for every failed credential check (`ambiguousErrorMessages`, A-5).
AMBIGUOUS = "Something went wrong. Please check your credentials."
LOGGED_OUT = "You've been logged out by the server. Please log in again."
EXPIRED = "Your session has expired. Please log in again."


def credentials_refused(reason: str) -> MeteorError:
    """403 with Meteor 1.x's precise text, or the ambiguous one (the default: it tells an
    attacker nothing about which accounts exist)."""
    return MeteorError(403, AMBIGUOUS if dddp_settings.ACCOUNTS_AMBIGUOUS_ERRORS else reason)


def not_logged_in() -> MeteorError:
    return MeteorError("You are not logged in.")  # Meteor's string code, and no reason


# --- login --------------------------------------------------------------------------------


def hashes_a_password(params: Any) -> bool:
    """Whether a login call checks a password (a resume checks no hash)."""
    return not (len(params) == 1 and isinstance(params[0], dict) and "resume" in params[0])


def login(this: MethodInvocation, options: Any) -> dict[str, Any]:
    """`login`: with a password (`user` and `password`) or a resume token (`resume`)."""
    if not isinstance(options, dict):
        raise match_failed("login takes one object of options")
    if "resume" in options:
        return _resume(this, options)
    if "user" in options and "password" in options:
        return _password_login(this, options)
    raise MeteorError(400, "Unrecognized options for login request")


def _password_login(this: MethodInvocation, options: dict[str, Any]) -> dict[str, Any]:
    if not set(options) <= {"user", "password", "code"}:  # `code`: Meteor 2FA's, which we do not offer
        raise match_failed(f"unexpected login options: {sorted(set(options) - {'user', 'password', 'code'})}")
    selector = options["user"]
    password = parse_password(options["password"])
    user = find_user(selector)
    # Guessing is slowed per connection and per account (any connection naming it).
    keys = ((this.connection.id,), ("user", user.pk) if user is not None else ("name", _named(selector)))
    by_connection, by_account = _failure_counts()
    waits = [wait for wait in (by_connection.over(keys[0]), by_account.over(keys[1])) if wait is not None]
    if waits:
        raise too_many_requests(max(waits))
    refusal = _refusal(user, password)
    if refusal is not None:
        by_connection.count(keys[0])
        by_account.count(keys[1])
        raise refusal
    return logged_in(this, user, "password")


def _refusal(user: Any, password: Password) -> MeteorError | None:
    """Why the password does not log this user in, or None when it does."""
    if user is None:
        waste_a_check(password)
        return credentials_refused("User not found")
    if not has_password(user):
        waste_a_check(password)
        return credentials_refused("User has no password set")
    if not check_password(user, password) or not user.is_active:  # Django refuses inactive users
        return credentials_refused("Incorrect password")
    return None


def _named(selector: dict[str, str]) -> tuple[str, str]:
    ((key, value),) = selector.items()
    return key, value.casefold()


_failures: tuple[tuple[int, float], FixedWindowCounts, FixedWindowCounts] | None = None


def _failure_counts() -> tuple[FixedWindowCounts, FixedWindowCounts]:
    """This process's counts of failed logins, per connection and per account."""
    global _failures
    limit = (int(dddp_settings.LOGIN_FAILURES), float(dddp_settings.LOGIN_FAILURES_INTERVAL))
    if _failures is None or _failures[0] != limit:
        _failures = (limit, FixedWindowCounts(*limit), FixedWindowCounts(*limit))
    return _failures[1], _failures[2]


def _resume(this: MethodInvocation, options: dict[str, Any]) -> dict[str, Any]:
    token = options["resume"]
    if len(options) != 1 or not isinstance(token, str) or not token:
        raise match_failed("resume takes the token string alone")
    row = tokens.find(token)
    if row is None or not row.user.is_active:
        raise MeteorError(403, LOGGED_OUT)
    if tokens.expires(row.when) <= timezone.now():
        raise MeteorError(403, EXPIRED)  # deleted by the server's periodic sweep (tokens.delete_expired)
    return logged_in(this, row.user, "resume", token=token, row=row)


def find_user(selector: Any) -> Any:
    """The user a login names by exactly one of `id`, `username`, `email` (A-2), or None.

    Username and email match case-insensitively, as in Meteor, when that finds
    exactly one user and no user has exactly the given spelling.
    """
    if not isinstance(selector, dict) or len(selector) != 1:
        raise match_failed('user must be {"id"}, {"username"} or {"email"}')
    ((key, value),) = selector.items()
    if key not in ("id", "username", "email") or not isinstance(value, str) or not value:
        raise match_failed('user must be {"id"}, {"username"} or {"email"}, with a non-empty string')
    model = get_user_model()
    users = model._default_manager.all()
    if key == "id":
        try:
            return users.filter(pk=document_pk(model, value)).first()
        except ValidationError:
            return None
    field = model.USERNAME_FIELD if key == "username" else model.get_email_field_name()
    if field not in {f.name for f in model._meta.concrete_fields}:
        return None
    exact = users.filter(**{field: value}).first()
    if exact is not None:
        return exact
    candidates = list(users.filter(**{f"{field}__iexact": value})[:2])
    return candidates[0] if len(candidates) == 1 else None


def logged_in(
    this: MethodInvocation, user: Any, kind: str | None, *, token: str | None = None, row: Any = None
) -> dict[str, Any]:
    """Log the connection in as `user`, with `token` or a new one: the login result (A-3)."""
    if token is None:
        token, row = tokens.new_token(user)
    this.set_login_token(row.hashed_token)
    this.set_user_id(user.pk)
    update_last_login(type(user), user)
    result = {"id": document_id(user.pk), "token": token, "tokenExpires": tokens.expires(row.when)}
    if kind is not None:
        result["type"] = kind
    return result


# --- tokens ---------------------------------------------------------------------------------


def logout(this: MethodInvocation) -> None:
    """`logout`: the connection's token dies (its other connections close), the user id is null."""
    hashed = this.login_token
    this.set_login_token(None)  # first: this connection is not closed with the token
    if hashed is not None:
        tokens.revoke(hashed)
    this.set_user_id(None)


def get_new_token(this: MethodInvocation) -> dict[str, Any]:
    """`getNewToken`: a fresh token for this login, with the old one's `when`; the old one lives on."""
    current = _current_token(this)
    token, row = tokens.new_token(current.user, when=current.when)
    this.set_login_token(row.hashed_token)
    return {"id": document_id(current.user_id), "token": token, "tokenExpires": tokens.expires(row.when)}


def remove_other_tokens(this: MethodInvocation) -> None:
    """`removeOtherTokens`: every other token of the user dies, closing its connections."""
    current = _current_token(this)
    tokens.revoke_others(current.user_id, keep=current.hashed_token)


def _current_token(this: MethodInvocation) -> Any:
    from dddp.accounts.models import LoginToken

    if this.user_id is None or this.login_token is None:
        raise not_logged_in()
    current = LoginToken.objects.select_related("user").filter(hashed_token=this.login_token).first()
    if current is None:
        raise not_logged_in()
    return current


# --- passwords --------------------------------------------------------------------------------


def create_user(this: MethodInvocation, options: Any) -> dict[str, Any]:
    """`createUser`, when DDDP_ACCOUNTS_SIGNUP allows it; logs the new user in."""
    if not dddp_settings.ACCOUNTS_SIGNUP:
        raise MeteorError(403, "Signups forbidden")
    if not isinstance(options, dict) or not set(options) <= {"username", "email", "password", "profile"}:
        raise match_failed("createUser takes {username, email, password, profile}")
    username, email = options.get("username"), options.get("email")
    for value in (username, email):
        if value is not None and not isinstance(value, str):
            raise match_failed("username and email must be strings")
    if not username and not email:
        raise MeteorError(400, "Need to set a username or email")
    if "password" not in options:
        raise match_failed("createUser needs a password")
    password = parse_password(options["password"])
    model: Any = get_user_model()
    email_field = model.get_email_field_name()
    fields: dict[str, Any] = {}
    if email:
        if email_field not in {f.name for f in model._meta.concrete_fields}:
            raise match_failed("this server's users have no email")
        if model._default_manager.filter(**{f"{email_field}__iexact": email}).exists():
            raise credentials_refused("Email already exists.")
        fields[email_field] = email
    if model.USERNAME_FIELD == email_field:  # a user model whose username is its email
        if username:
            raise match_failed("this server's users have no username: sign up with an email")
    else:  # without a username, the email is the username (Django's default user needs one)
        fields[model.USERNAME_FIELD] = username or email
    if username and model._default_manager.filter(**{f"{model.USERNAME_FIELD}__iexact": username}).exists():
        raise credentials_refused("Username already exists.")
    user = model(**fields)
    _validate(user, password, exclude=["password"])
    user.password = encoded_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # the same name, signed up at the same moment
        raise credentials_refused("Username already exists.") from None
    if email and dddp_settings.ACCOUNTS_SEND_VERIFICATION_EMAIL and verification.verified_field(model):
        transaction.on_commit(lambda: verification.send_verification_email(user))  # no mail for a rollback
    return logged_in(this, user, "password")


def change_password(this: MethodInvocation, old: Any, new: Any) -> dict[str, Any]:
    """`changePassword`: the old password checked, the new one stored, the user's other tokens dead."""
    if this.user_id is None:
        raise MeteorError(401, "Must be logged in")
    old_password, new_password = parse_password(old), parse_password(new)
    user = this.user
    if user is None:
        raise MeteorError(401, "Must be logged in")
    if not check_password(user, old_password):
        raise credentials_refused("Incorrect password")
    _validate(user, new_password, exclude=None)
    user.password = encoded_password(new_password)
    type(user)._default_manager.filter(pk=user.pk).update(password=user.password)
    tokens.revoke_others(user.pk, keep=this.login_token)
    return {"passwordChanged": True}


# --- forgotten passwords ------------------------------------------------------------------------


def forgot_password(this: MethodInvocation, options: Any) -> None:
    """`forgotPassword({email})`: mail the user a reset token (Django's token generator).

    The answer is the same whether or not a user has that email (as Django's
    own reset view does: it tells nobody which addresses have accounts); only
    an active user with a usable password is sent a mail.
    """
    if not isinstance(options, dict) or set(options) != {"email"} or not isinstance(options["email"], str):
        raise match_failed('forgotPassword takes {"email": <address>}')
    email = options["email"]
    by_connection, by_account = _failure_counts()  # each request counts: mails cost
    keys = ((this.connection.id,), ("name", ("email", email.casefold())))
    waits = [wait for wait in (by_connection.count(keys[0]), by_account.count(keys[1])) if wait is not None]
    if waits:
        raise too_many_requests(max(waits))
    model: Any = get_user_model()
    field = model.get_email_field_name()
    for user in model._default_manager.filter(**{f"{field}__iexact": email}):
        if user.is_active and has_password(user):
            _send_reset_mail(user, getattr(user, field))


def reset_password(this: MethodInvocation, token: Any, new: Any) -> dict[str, Any]:
    """`resetPassword(token, newPassword)`: the mailed token sets a new password, ends
    every other login of the user, and logs this connection in."""
    from django.contrib.auth.tokens import default_token_generator

    if not isinstance(token, str):
        raise match_failed("the reset token is a string")
    password = parse_password(new)
    user = mailed_tokens.user_of(token, default_token_generator)
    if user is None:
        raise token_refused(this, "Token expired")  # Meteor's text, for any token that does not work
    _validate(user, password, exclude=None)
    user.password = encoded_password(password)  # the token dies with the old hash
    type(user)._default_manager.filter(pk=user.pk).update(password=user.password)
    tokens.revoke_others(user.pk, keep=None)
    return logged_in(this, user, "password")


def token_refused(this: MethodInvocation, reason: str) -> MeteorError:
    """403 for a mailed token that does not work; guessing counts as failed logins do."""
    by_connection, _ = _failure_counts()
    if by_connection.count((this.connection.id,)) is not None:
        return too_many_requests(by_connection.interval)
    return MeteorError(403, reason)


def reset_token(user: Any) -> str:
    """The token of a reset mail."""
    from django.contrib.auth.tokens import default_token_generator

    return mailed_tokens.make(user, default_token_generator)


def _send_reset_mail(user: Any, address: str) -> None:
    mailed_tokens.mail(
        address,
        "Reset your password",
        dddp_settings.PASSWORD_RESET_URL,
        reset_token(user),
        action="Someone asked to reset the password of your account. If it was you, to choose a new one",
        otherwise="If it was not you, ignore this mail: your password stays as it is.",
    )


def _validate(user: Any, password: Password, exclude: list[str] | None) -> None:
    """The user model's own validation, and Django's password validators when the plaintext
    is known (a digest cannot be judged); 400 naming the field."""
    try:
        if exclude is not None:
            user.full_clean(exclude=exclude, validate_unique=False)
        if password.plaintext is not None:
            validate_password(password.plaintext, user)
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            field, errors = next(iter(exc.message_dict.items()))
            raise MeteorError(400, f"{field}: {' '.join(errors)}") from None
        raise MeteorError(400, f"password: {' '.join(exc.messages)}") from None
