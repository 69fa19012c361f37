"""Which subscriptions share an observer: those whose querysets compile to the same SQL."""

from __future__ import annotations

import pytest

from dddp.api import API, Publication
from dddp.server.compiled import compile_queries
from dddp.server.observer import observer_key, publication_queries, shared_key
from tests.accountsapp.ddp import MyDiaries, PublicDiaries
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db


def key(publication: type[Publication], user_id: object, params: list | None = None) -> tuple:
    params = params or []
    returned = publication_queries(API, publication, params, user_id)
    return shared_key(observer_key(publication, params, user_id), compile_queries(returned))


def test_a_publication_that_does_not_read_the_user_has_one_key_for_every_user() -> None:
    assert key(PublicDiaries, 1) == key(PublicDiaries, 2) == key(PublicDiaries, None)


def test_a_publication_filtering_on_the_user_has_one_key_per_user() -> None:
    assert key(MyDiaries, 1) != key(MyDiaries, 2)
    assert key(MyDiaries, 1) == key(MyDiaries, 1)


def test_querysets_with_no_rows_share_whoever_asks() -> None:
    assert key(MyDiaries, None)[2] == 'sql [["accountsapp.Diary", "EMPTY", []]]'


def test_what_is_not_a_list_of_querysets_keeps_one_observer_per_user() -> None:
    class Odd(Publication):
        def get_queries(self):  # type: ignore[no-untyped-def]
            return [Note.objects.all(), "not a queryset"]

    assert key(Odd, 1) != key(Odd, 2)
    assert key(Odd, 1)[2] == "user 1"
