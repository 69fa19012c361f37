"""The Change payload: its JSON round trip, its chunks under PostgreSQL's 8000 bytes, its channels."""

from __future__ import annotations

import datetime
import math

import pytest

from dddp.changes import (
    CHUNK_MARK,
    MAX_CHANNEL_BYTES,
    Change,
    Reassembler,
    channel_for,
    decode,
    encode,
    payloads,
)

#: PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
NOTIFY_LIMIT = 8000

FIELDS = {
    "title": "Straße ✓ 😀",
    "pages": 12,
    "ratio": 0.1,
    "big": 2**60,
    "missing": None,
    "flag": False,
    "when": datetime.datetime(2024, 2, 29, 12, 30, 1, 123000, tzinfo=datetime.timezone.utc),
    "blob": b"\x00\xff",
    "nested": {"$date": 1, "list": [1, "two", None]},
    "tags": ["1", "-~x"],
}


def round_trip(change: Change) -> Change:
    return decode(encode(change))


def test_a_save_round_trips_with_its_fields() -> None:
    got = round_trip(Change("save", "app.book", "7", FIELDS))
    assert (got.op, got.collection, got.id, got.partial) == ("save", "app.book", "7", False)
    assert got.fields == {**FIELDS, "big": str(2**60)}  # beyond 2**53 an integer travels as a string


def test_a_partial_save_round_trips_as_partial() -> None:
    got = round_trip(Change("save", "app.book", "7", {"tags": []}, partial=True))
    assert (got.op, got.fields, got.partial) == ("save", {"tags": []}, True)


def test_a_delete_round_trips_without_fields() -> None:
    got = round_trip(Change("delete", "app.book", "-~x", {"ignored": 1}))
    assert (got.op, got.collection, got.id, got.fields, got.partial) == (
        "delete",
        "app.book",
        "-~x",
        {},
        False,
    )
    assert '"f"' not in encode(Change("delete", "app.book", "7"))


def test_special_floats_round_trip() -> None:
    fields = round_trip(Change("save", "c", "1", {"a": math.inf, "b": -math.inf, "c": math.nan})).fields
    assert fields["a"] == math.inf and fields["b"] == -math.inf and math.isnan(fields["c"])


def test_identical_changes_give_different_payloads() -> None:
    """PostgreSQL drops a NOTIFY identical to one already sent in the transaction."""
    change = Change("save", "app.book", "7", {"x": 1})
    texts = [encode(change) for _ in range(3)] + [p for _ in range(3) for p in payloads(change)]
    assert len(set(texts)) == 6
    serials = [decode(text).serial for text in texts]
    assert len(set(serials)) == 6 and all(serial > 0 for serial in serials)


def test_identical_large_changes_give_different_chunks() -> None:
    change = Change("save", "app.book", "7", {"body": "x" * 20_000})
    first, second = payloads(change), payloads(change)
    assert not set(first) & set(second)


def test_a_small_change_is_one_payload_that_decodes() -> None:
    change = Change("save", "app.book", "7", {"body": "x" * 100})
    [payload] = payloads(change)
    assert not payload.startswith(CHUNK_MARK)
    assert decode(payload).fields == change.fields


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def test_a_change_just_under_the_limit_stays_one_payload() -> None:
    overhead = utf8_size(encode(Change("save", "c", "1", {"b": ""}, serial=1)))
    change = Change("save", "c", "1", {"b": "x" * (NOTIFY_LIMIT - 1 - overhead)}, serial=1)
    [payload] = payloads(change)
    assert utf8_size(payload) == NOTIFY_LIMIT - 1
    longer = Change("save", "c", "1", {"b": "x" * (NOTIFY_LIMIT - overhead)}, serial=1)
    assert len(payloads(longer)) > 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("a" * 30_000, id="ascii"),
        pytest.param("é" * 15_000, id="two-byte"),
        pytest.param("€" * 10_000, id="three-byte"),
        pytest.param("😀" * 7_500, id="four-byte"),
        # Shifted by one byte, so that every chunk boundary falls inside a character.
        pytest.param("a" + "😀" * 7_500, id="four-byte-shifted-1"),
        pytest.param("ab" + "€" * 10_000, id="three-byte-shifted-2"),
        pytest.param("".join(chr(0x20 + i % 0x2FFF) for i in range(12_000)), id="mixed"),
    ],
)
def test_a_large_change_is_chunked_under_the_limit_and_reassembled(body: str) -> None:
    change = Change("save", "app.book", "7", {"body": body, "n": 1})
    chunks = payloads(change)
    assert len(chunks) > 1
    assert all(chunk.startswith(CHUNK_MARK) for chunk in chunks)
    assert max(utf8_size(chunk) for chunk in chunks) < NOTIFY_LIMIT
    reassembler = Reassembler()
    results = [reassembler.feed("dddp_app_book", chunk) for chunk in chunks]
    assert results[:-1] == [None] * (len(chunks) - 1)
    rebuilt = results[-1]
    assert rebuilt is not None
    assert (rebuilt.op, rebuilt.collection, rebuilt.id, rebuilt.fields) == (
        "save",
        "app.book",
        "7",
        change.fields,
    )


def test_chunked_messages_on_two_channels_interleaved_are_both_rebuilt() -> None:
    one = payloads(Change("save", "app.one", "1", {"body": "1" * 20_000}))
    two = payloads(Change("save", "app.two", "2", {"body": "€" * 7_500}))
    assert len(one) == len(two) == 3
    reassembler = Reassembler()
    done = []
    for a, b in zip(one, two, strict=True):
        done += [reassembler.feed("dddp_app_one", a), reassembler.feed("dddp_app_two", b)]
    assert done[:4] == [None] * 4
    first, second = done[4:]
    assert first is not None and second is not None
    assert (first.id, first.fields["body"]) == ("1", "1" * 20_000)
    assert (second.id, second.fields["body"]) == ("2", "€" * 7_500)


def test_a_plain_payload_between_chunks_is_delivered_at_once() -> None:
    chunks = payloads(Change("save", "app.big", "1", {"body": "x" * 20_000}))
    reassembler = Reassembler()
    assert reassembler.feed("dddp_app_big", chunks[0]) is None
    small = reassembler.feed("dddp_app_small", encode(Change("delete", "app.small", "9")))
    assert small is not None and (small.op, small.id) == ("delete", "9")
    assert [reassembler.feed("dddp_app_big", chunk) for chunk in chunks[1:]][-1] is not None


def test_a_missing_chunk_is_an_error() -> None:
    chunks = payloads(Change("save", "app.book", "1", {"body": "x" * 20_000}))
    reassembler = Reassembler()
    reassembler.feed("ch", chunks[0])
    with pytest.raises(ValueError, match="out of order"):
        reassembler.feed("ch", chunks[2])


def test_a_chunk_before_its_first_is_an_error() -> None:
    chunks = payloads(Change("save", "app.book", "1", {"body": "x" * 20_000}))
    with pytest.raises(ValueError, match="out of order"):
        Reassembler().feed("ch", chunks[1])


def test_after_reset_a_redelivered_message_is_rebuilt() -> None:
    """After a lost connection the reassembler forgets half-received messages."""
    chunks = payloads(Change("save", "app.book", "1", {"body": "x" * 20_000}))
    reassembler = Reassembler()
    reassembler.feed("ch", chunks[0])
    reassembler.feed("ch", chunks[1])
    with pytest.raises(ValueError):
        reassembler.feed("ch", chunks[0])  # starting over without a reset
    reassembler = Reassembler()
    reassembler.feed("ch", chunks[0])
    reassembler.reset()
    results = [reassembler.feed("ch", chunk) for chunk in chunks]
    assert results[-1] is not None and results[-1].fields["body"] == "x" * 20_000


def test_after_an_out_of_order_chunk_the_next_message_is_rebuilt() -> None:
    bad = payloads(Change("save", "app.book", "1", {"body": "x" * 20_000}))
    good = payloads(Change("save", "app.book", "2", {"body": "y" * 20_000}))
    reassembler = Reassembler()
    with pytest.raises(ValueError):
        reassembler.feed("ch", bad[1])
    reassembler.reset()
    results = [reassembler.feed("ch", chunk) for chunk in good]
    assert results[-1] is not None and results[-1].id == "2"


def test_a_collection_gives_its_channel() -> None:
    assert channel_for("testapp.book") == "dddp_testapp_book"
    assert channel_for("My-App.Some Model") == "dddp_my_app_some_model"


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("a" * 100, id="ascii"),
        pytest.param("é" * 60, id="two-byte"),
        pytest.param("😀" * 40, id="4-byte"),
    ],
)
def test_long_collection_names_give_distinct_channels_within_63_bytes(prefix: str) -> None:
    one, two = channel_for(prefix + ".one"), channel_for(prefix + ".two")
    assert len(one.encode("utf-8")) <= MAX_CHANNEL_BYTES
    assert len(two.encode("utf-8")) <= MAX_CHANNEL_BYTES
    assert one != two
    assert one.startswith("dddp_")
    assert channel_for(prefix + ".one") == one  # writers and servers must agree


def test_a_name_of_exactly_63_bytes_is_kept_whole() -> None:
    name = "x" * (MAX_CHANNEL_BYTES - len("dddp_"))
    assert channel_for(name) == "dddp_" + name


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("not json", id="not-json"),
        pytest.param("[1, 2]", id="array"),
        pytest.param('"save"', id="string"),
        pytest.param('{"op": "insert", "c": "a.b", "id": "1"}', id="unknown-op"),
        pytest.param('{"c": "a.b", "id": "1"}', id="no-op"),
        pytest.param('{"op": "save", "c": "a.b", "id": "1", "f": {"x": {"$date": "soon"}}}', id="bad-ejson"),
        pytest.param(
            '{"op": "save", "c": "a.b", "id": "1", "f": {"x": {"$type": "nope", "$value": 1}}}', id="bad-type"
        ),
        # Valid JSON with an op, but not a change: a foreign NOTIFY on a dddp channel.
        pytest.param('{"op": "save"}', id="no-collection-no-id"),
        pytest.param('{"op": "delete", "c": "a.b"}', id="no-id"),
        pytest.param('{"op": "save", "c": "a.b", "id": "1", "f": [1, 2]}', id="fields-not-an-object"),
        pytest.param('{"op": "save", "c": "a.b", "id": "1", "f": {"$date": 5}}', id="fields-a-date"),
    ],
)
def test_decoding_anything_but_a_change_raises_value_error(text: str) -> None:
    """The hub drops a malformed notification only when it raises ValueError."""
    with pytest.raises(ValueError):
        decode(text)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(CHUNK_MARK + "garbage", id="no-header"),
        pytest.param(CHUNK_MARK + "m:x:2:{", id="bad-index"),
        pytest.param(CHUNK_MARK + "m:0:1:{not json", id="bad-json"),
    ],
)
def test_a_malformed_chunk_raises_value_error(payload: str) -> None:
    with pytest.raises(ValueError):
        Reassembler().feed("ch", payload)
