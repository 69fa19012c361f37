"""Meteor.Error: the only kind of error a DDP client is allowed to see (D-40 to D-43)."""

from __future__ import annotations

from typing import Any


class MeteorError(Exception):
    """A deliberate, client-safe error, sent to the client as a `Meteor.Error` object.

    `error` is a number (HTTP-like code) or a short string code; `reason` is a
    human-readable text; `details` is any JSON-compatible value. Raise it from a
    method or publication to tell the client what went wrong; any other exception
    reaches the client only as 500 "Internal server error" (D-42).
    """

    def __init__(self, error: int | str, reason: str | None = None, details: Any = None):
        if isinstance(error, bool) or not isinstance(error, (int, str)):
            raise TypeError(f"MeteorError code must be an int or str, got {type(error).__name__}")
        self.error = error
        self.reason = reason
        self.details = details
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """Meteor's `message`: `reason [error]`, or `[error]` without a reason (D-40)."""
        if self.reason is None:
            return f"[{self.error}]"
        return f"{self.reason} [{self.error}]"

    def to_wire(self) -> dict[str, Any]:
        """The error object as it goes in `result.error` or `nosub.error` (D-40)."""
        wire: dict[str, Any] = {"isClientSafe": True, "error": self.error}
        if self.reason is not None:
            wire["reason"] = self.reason
        if self.details is not None:
            wire["details"] = self.details
        wire["message"] = self.message
        wire["errorType"] = "Meteor.Error"
        return wire

    def __repr__(self) -> str:
        return f"MeteorError({self.error!r}, {self.reason!r}, {self.details!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MeteorError):
            return NotImplemented
        return (self.error, self.reason, self.details) == (other.error, other.reason, other.details)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


def internal_server_error() -> MeteorError:
    """What a client sees for any exception that is not a MeteorError (D-42)."""
    return MeteorError(500, "Internal server error")


def method_not_found(name: str) -> MeteorError:
    """404 for a method nobody registered (D-80; Meteor 3.x text, D-41)."""
    return MeteorError(404, f"Method '{name}' not found")


def subscription_not_found(name: str) -> MeteorError:
    """404 for a publication nobody registered (D-50; Meteor 3.x text, D-41)."""
    return MeteorError(404, f"Subscription '{name}' not found")


def match_failed(details: str | None = None) -> MeteorError:
    """400 for arguments of the wrong number or type, as Meteor's `check()` (D-43)."""
    return MeteorError(400, "Match failed", details)


def must_be_logged_in() -> MeteorError:
    """401 for a method or publication that needs a logged-in user (Meteor accounts' text)."""
    return MeteorError(401, "Must be logged in")


def database_unavailable() -> MeteorError:
    """503 while the database cannot be reached: the client may retry (issue 9)."""
    return MeteorError(503, "Database unavailable, retry")
