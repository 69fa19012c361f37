"""Mistakes in a publication that only a subscription finds: nosub 500, and one log line saying which.

The system checks (tests/test_checks.py) find what they can at start-up; what
get_queries builds from the client's params is checked by the Observer, with
the checks' words, and whatever fails is logged by the session with the
publication's name and the params.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import pytest

from dddp.api import API, Publication, PublicationError
from dddp.server.observer import Observer
from tests.ddp_client import DDPClient
from tests.server_process import ServerProcess
from tests.testapp import models

INTERNAL_SERVER_ERROR = {
    "isClientSafe": True,
    "error": 500,
    "reason": "Internal server error",
    "message": "Internal server error [500]",
    "errorType": "Meteor.Error",
}


def returning(value: Any) -> type[Publication]:
    """A publication whose get_queries(text) returns `value`."""
    return type("Returning", (Publication,), {"get_queries": lambda self, text: value})


# --- what get_queries returns (the Observer; no database) -------------------------------


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (
            models.Note.objects.all(),
            "Returning.get_queries() returned a queryset of testapp.Note, not a list of querysets. "
            "Put it in a list: return [...].",
        ),
        (
            None,
            "Returning.get_queries() returned None, not a list of querysets. "
            "Give a list of querysets: return [...].",
        ),
        (
            [models.Note.objects.all(), models.Note.objects],
            "Returning.get_queries()[1] is <django.db.models.manager.Manager object at",
        ),
        (
            [models.DatedNote.objects.all()],
            "Returning.get_queries()[0] is a queryset of testapp.DatedNote, which no Collection publishes.",
        ),
        (
            [models.Note.objects.filter(text="a").union(models.Note.objects.filter(text="b"))],
            "Returning.get_queries()[0] is a union() of querysets, which dddp cannot observe.",
        ),
    ],
    ids=["a queryset", "None", "a manager", "no Collection", "a union"],
)
def test_what_get_queries_returns_is_checked_as_the_system_checks_check_static_queries(
    value: Any, said: str
) -> None:
    """(This test has no database access: nothing is run, not even for a message.)"""
    with pytest.raises(PublicationError) as caught:
        Observer(API, returning(value), ["x"], None)

    assert str(caught.value).startswith(said)


def test_a_filter_through_an_unpublished_table_is_logged_when_observed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "dddp.server")

    Observer(API, returning([models.Note.objects.filter(datednote__isnull=False)]), ["x"], None)

    assert caplog.messages == [
        "Returning.get_queries()[0] filters through table testapp_datednote, which no Collection "
        "publishes: its changes reach subscribers only when the publication's own rows change"
    ]


def test_a_many_to_many_table_of_a_published_model_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its changes arrive as changes of the Book: nothing to warn about."""
    caplog.set_level(logging.WARNING, "dddp.server")

    Observer(API, returning([models.Book.objects.filter(tags__name="red")]), ["x"], None)
    tags = Observer(API, returning([models.Tag.objects.filter(books=1)]), ["x"], None)

    assert caplog.messages == []
    assert tags.queries[0].related == {"testapp.book"}  # a change of a Book's tags re-runs it


# --- over DDP -------------------------------------------------------------------------------


def subscribe_and_find_the_log_line(server: ServerProcess, name: str, params: list[Any]) -> tuple[dict, str]:
    """The nosub a client gets, and the session's log line about it."""
    start = len(server.log)
    with DDPClient(server.ws_url) as client:
        client.connect()
        [nosub] = client.sub(name, *params, id="s")
    match = server.wait_for_log(rf"publication {name!r} failed for params ", start=start)
    return nosub, match.string


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "mistake"),
    [
        ("MisspeltAuthors", "FieldError: Cannot resolve keyword 'emial' into field. Choices are: "),
        ("MisorderedBooks", "FieldError: Cannot resolve keyword 'titel' into field. Choices are: "),
        (
            "UnpublishedDatedNotes",
            "PublicationError: UnpublishedDatedNotes.get_queries()[0] is a queryset of testapp.DatedNote, "
            "which no Collection publishes. Register a Collection for it",
        ),
    ],
    ids=["in get_queries", "in the first read", "no Collection"],
)
def test_a_runtime_mistake_gets_nosub_500_and_one_log_line_naming_publication_params_and_mistake(
    server: ServerProcess, name: str, mistake: str
) -> None:
    """D-54, D-42: the client learns nothing of the internals; the log, all of it, in one line."""
    nosub, line = subscribe_and_find_the_log_line(server, name, ["ada@example.com"])

    assert nosub == {"msg": "nosub", "id": "s", "error": INTERNAL_SERVER_ERROR}
    assert re.search(rf"connection \d+: publication {name!r} failed for params \['ada@example.com'\]: ", line)
    assert mistake in line
    time.sleep(0.3)  # the log reader catches up with anything that followed
    following = server.log[server.log.index(line) + 1 :]
    assert not any("Traceback" in later for later in following[:3]), "a diagnosed mistake needs no traceback"


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_exception_is_logged_with_the_same_line_and_its_traceback(
    server: ServerProcess,
) -> None:
    nosub, line = subscribe_and_find_the_log_line(server, "FailingPublication", [])

    assert nosub == {"msg": "nosub", "id": "s", "error": INTERNAL_SERVER_ERROR}
    assert line.endswith("publication 'FailingPublication' failed for params []: ValueError: publication bug")
    server.wait_for_log(r"^Traceback \(most recent call last\)", start=server.log.index(line))


@pytest.mark.django_db(transaction=True)
def test_the_params_in_the_log_line_are_a_bounded_prefix(server: ServerProcess) -> None:
    """Client input in logs is bounded (DESIGN: rules that hold everywhere)."""
    nosub, line = subscribe_and_find_the_log_line(server, "MisspeltAuthors", ["x" * 10_000])

    assert nosub["error"]["error"] == 500
    quoted = re.search(r"failed for params (.*?): FieldError", line)
    assert quoted is not None
    assert quoted.group(1) == repr(["x" * 10_000])[:197] + "..."


# A server whose API gains, after the start-up checks passed, a publication they would
# have refused (dddp.E005): what a silenced check, or a registration made later, leaves.
REGISTERS_A_TYPO_AFTER_THE_CHECKS = """
import sys
from dddp.server import main as entry

checked_setup = entry.setup_django

def setup_then_register_a_typo():
    checked_setup()
    from dddp.api import API, Publication

    class ByEmailWithATypo(Publication):
        def get_querys(self, email):
            return []

    API.register([ByEmailWithATypo])

entry.setup_django = setup_then_register_a_typo
sys.exit(entry.main())
"""


@pytest.fixture(scope="module")
def server_with_a_typo(start_server: Any) -> ServerProcess:
    command = [sys.executable, "-c", REGISTERS_A_TYPO_AFTER_THE_CHECKS]
    return start_server("--settings", "tests.settings", "127.0.0.1:0", command=command).wait_until_listening()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("params", [[], ["ada@example.com"]], ids=["no params", "one param"])
def test_a_publication_without_get_queries_gets_nosub_500_never_match_failed(
    server_with_a_typo: ServerProcess, params: list[Any]
) -> None:
    """The client's params are not at fault: before, one param got 400 "Match failed", and no log."""
    nosub, line = subscribe_and_find_the_log_line(server_with_a_typo, "ByEmailWithATypo", params)

    assert nosub == {"msg": "nosub", "id": "s", "error": INTERNAL_SERVER_ERROR}
    assert line.endswith(
        f"publication 'ByEmailWithATypo' failed for params {params!r}: PublicationError: ByEmailWithATypo "
        "has neither `queries` nor a `get_queries()` method. Did you mean `get_queries`? "
        "ByEmailWithATypo defines `get_querys`."
    )


def test_a_connection_repeating_a_failing_subscription_is_logged_once_per_interval(
    start_server,  # type: ignore[no-untyped-def]
) -> None:
    """Issue 9, attack 8: each failing sub was a line and a traceback."""
    server = start_server().wait_until_listening()
    with DDPClient(server.ws_url) as ddp:
        ddp.connect()
        for n in range(20):
            ddp.send({"msg": "sub", "id": f"s{n}", "name": "FailingPublication", "params": []})
            assert ddp.recv()["msg"] == "nosub"
        ddp.call("echo", id="marker")  # answered after every nosub: all were handled
    assert server.text.count("publication 'FailingPublication' failed") == 1
    assert server.text.count("Traceback") == 1
