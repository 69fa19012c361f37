"""Rows as DDP documents: ids in Meteor's `idStringify` form (D-55), fields as a Change delivers them."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import models

from dddp import signals
from dddp.changes import Change, decode, encode
from dddp.documents import (
    canonical,
    document_fields,
    document_id,
    document_pk,
    fields_from_values,
    id_reader,
    many_to_many_ids,
    row_reader,
    value_attnames,
)
from dddp.protocol import ejson
from tests.typesapp.models import CharKeyed, CharKeyedProfile, Group, Record, Sample, UuidKeyed

UTC = datetime.timezone.utc
U1 = uuid.UUID("0b6f2c1e-9a4d-4e8f-8c3a-1d2e3f405162")
OBJECT_ID = "0123456789abcdef01234567"  # 24 lowercase hex digits: a Meteor client reads an ObjectID


class ObjectID(str):
    """What Meteor's client makes of a 24-hex-digit id: not a string id."""


def meteor_id_parse(doc_id: str) -> Any:
    """The `_id` a Meteor client gives a document: a port of `MongoID.idParse` (mongo-id package)."""
    if doc_id == "":
        return doc_id
    if doc_id == "-":
        return None  # undefined
    if doc_id.startswith("-"):
        return doc_id[1:]
    if doc_id.startswith("~"):
        return json.loads(doc_id[1:])
    if len(doc_id) == 24 and all(c in "0123456789abcdef" for c in doc_id):
        return ObjectID(doc_id)
    return doc_id


def on_the_wire(value: Any) -> str:
    """What a client receives, as text: tells 1 from true and "5" from 5, but not 1 from 1.0 (as JS)."""
    return ejson.dumps(value, canonical=True)


# --- ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pk", "expected"),
    [
        (5, "5"),
        (0, "0"),
        (2**63 - 1, "9223372036854775807"),
        (2**70, "1180591620717411303424"),  # beyond any JS number: still exact, as a string
        (U1, "0b6f2c1e-9a4d-4e8f-8c3a-1d2e3f405162"),
        ("plain", "plain"),
        ("", ""),
        ("5", "5"),
        ("a-b~c{", "a-b~c{"),
        ("-x", "--x"),
        ("-", "--"),
        ("~5", "-~5"),
        ("~", "-~"),
        ("{}", "-{}"),
        (OBJECT_ID, "-" + OBJECT_ID),
        (OBJECT_ID.upper(), OBJECT_ID.upper()),  # ObjectIDs are lower-case only
        (OBJECT_ID[:-1], OBJECT_ID[:-1]),
        (OBJECT_ID + "8", OBJECT_ID + "8"),
    ],
    ids=repr,
)
def test_document_id(pk: Any, expected: str) -> None:
    assert document_id(pk) == expected


@pytest.mark.parametrize(
    "pk",
    [5, 0, 2**70, -5, -1, U1, "plain", "", "-x", "--x", "-", "~5", "~true", "{}", OBJECT_ID, "5", "-5"],
    ids=repr,
)
def test_a_meteor_client_sees_the_primary_key_as_a_string(pk: Any) -> None:
    """D-55: the client's `_id` is the key's string form, never a number, an ObjectID, or another key's."""
    seen = meteor_id_parse(document_id(pk))
    assert type(seen) is str
    assert seen == str(pk)


def test_negative_and_positive_integer_keys_stay_apart_on_the_client() -> None:
    assert meteor_id_parse(document_id(-5)) != meteor_id_parse(document_id(5))


@pytest.mark.parametrize("pk", [True, False, 1.0, 5.5, None, Decimal("5"), b"5", (1, 2)], ids=repr)
def test_a_key_that_is_not_an_integer_uuid_or_string_is_refused(pk: Any) -> None:
    with pytest.raises(TypeError):
        document_id(pk)


@pytest.mark.parametrize(
    ("model", "pk"),
    [
        (Sample, 1),
        (Sample, 2**62),
        (Sample, -5),
        (UuidKeyed, U1),
        (CharKeyed, "plain"),
        (CharKeyed, ""),
        (CharKeyed, "5"),
        (CharKeyed, "-x"),
        (CharKeyed, "--"),
        (CharKeyed, "-"),
        (CharKeyed, "~5"),
        (CharKeyed, "{x}"),
        (CharKeyed, OBJECT_ID),
        (CharKeyed, OBJECT_ID.upper()),
        (CharKeyedProfile, "plain"),  # a one-to-one primary key to a string key
        (CharKeyedProfile, "-x"),
        (CharKeyedProfile, OBJECT_ID),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else repr(value),
)
def test_document_pk_is_the_inverse_of_document_id(model: type[models.Model], pk: Any) -> None:
    back = document_pk(model, document_id(pk))
    assert back == pk
    assert type(back) is type(pk)


def test_document_pk_reads_ids_as_the_key_type() -> None:
    assert document_pk(Sample, "42") == 42
    assert document_pk(UuidKeyed, str(U1)) == U1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["plain", "-x", "~5", "{x}", OBJECT_ID])
@pytest.mark.parametrize("model", [CharKeyed, CharKeyedProfile], ids=lambda model: model.__name__)
def test_a_row_with_a_string_key_is_found_again_from_its_document_id(
    model: type[models.Model], key: str
) -> None:
    owner = CharKeyed.objects.create(key=key)
    instance = owner if model is CharKeyed else CharKeyedProfile.objects.create(owner=owner)
    assert model.objects.get(pk=document_pk(model, document_id(instance.pk))) == instance


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Sample, UuidKeyed], ids=lambda model: model.__name__)
def test_a_row_with_a_generated_key_is_found_again_from_its_document_id(model: type[models.Model]) -> None:
    instance = model.objects.create()
    assert model.objects.get(pk=document_pk(model, document_id(instance.pk))) == instance


# --- fields ------------------------------------------------------------------------------------------


def instance_and_values(instance: models.Model) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document of a row read back both ways: as an instance, and as a `.values()` row."""
    model = type(instance)
    loaded = model.objects.get(pk=instance.pk)
    row = model.objects.filter(pk=instance.pk).values(*value_attnames(model)).get()
    return document_fields(loaded), fields_from_values(model, row)


@pytest.fixture
def record() -> Record:
    owner = CharKeyed.objects.create(key="-owner")
    keyed = UuidKeyed.objects.create(id=U1)
    return Record.objects.create(
        title="Straße 😀",
        owner=owner,
        keyed=keyed,
        file="docs/report.pdf",
        blob=b"\x00\xffdata",
        day=datetime.date(2024, 2, 29),
        amount=Decimal("12.50"),
        stamp=datetime.datetime(2024, 2, 29, 12, 30, 1, 123456, tzinfo=UTC),
        uid=U1,
    )


@pytest.mark.django_db
def test_a_row_gives_its_columns_by_field_name_without_the_primary_key(record: Record) -> None:
    fields, _ = instance_and_values(record)
    assert list(fields) == ["title", "owner", "keyed", "file", "blob", "day", "amount", "stamp", "uid"]


@pytest.mark.django_db
def test_an_instance_and_a_values_row_give_the_same_document(record: Record) -> None:
    from_instance, from_values = instance_and_values(record)
    assert on_the_wire(from_instance) == on_the_wire(from_values)
    assert from_instance == from_values


@pytest.mark.django_db
def test_a_row_of_nulls_gives_the_same_document_both_ways() -> None:
    from_instance, from_values = instance_and_values(Record.objects.create(title="empty"))
    assert on_the_wire(from_instance) == on_the_wire(from_values)
    assert from_instance["owner"] is None and from_instance["blob"] is None


@pytest.mark.django_db
def test_samples_of_every_type_give_the_same_document_both_ways() -> None:
    group = Group.objects.create(name="g")
    sample = Sample.objects.create(
        num=-3,
        big=2**60,
        ratio=float("nan"),
        label="e\u0301",
        flag=False,
        day=datetime.date(1, 1, 1),
        group=group,
        amount=Decimal("-0.001"),
        stamp=datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        uid=U1,
        data={"$date": 1, "list": [1, None]},
        span=datetime.timedelta(days=1, microseconds=1),
        blob=b"",
        attachment="a.txt",
        code="x",
    )
    from_instance, from_values = instance_and_values(sample)
    assert on_the_wire(from_instance) == on_the_wire(from_values)


@pytest.mark.django_db
@pytest.mark.parametrize("nulls", [False, True], ids=["values", "nulls"])
def test_a_publication_reads_rows_as_a_payload_delivers_them(record: Record, nulls: bool) -> None:
    """`row_reader`'s shortcuts give what `fields_from_values` then `canonical` give."""
    group = Group.objects.create(name="g")
    if nulls:
        Sample.objects.create()
    else:
        Sample.objects.create(
            num=-(2**31), big=2**60, ratio=float("inf"), label="é", flag=True, day=datetime.date(2024, 2, 29),
            group=group, amount=Decimal("1.500"), stamp=datetime.datetime(2024, 1, 1, tzinfo=UTC), uid=U1,
            data={"$date": 1}, span=datetime.timedelta(seconds=1), blob=b"\x00", attachment="a.txt", code="x",
        )  # fmt: skip
    CharKeyedProfile.objects.create(owner=CharKeyed.objects.create(key="~k"), bio="b")
    for model in [Sample, Record, Group, CharKeyed, CharKeyedProfile, UuidKeyed]:
        attnames = value_attnames(model)
        read, to_id = row_reader(model), id_reader(model)
        for row, values in zip(
            model.objects.order_by("pk").values_list(*attnames),
            model.objects.order_by("pk").values(*attnames),
            strict=True,
        ):
            expected = canonical(fields_from_values(model, values))
            assert on_the_wire(read(row)) == on_the_wire(expected), model
            assert to_id(row[0]) == document_id(values[attnames[0]])


@pytest.mark.parametrize("pk", [0, 5, -5, 2**62, -(2**62)])
def test_integer_keys_read_from_the_database_get_the_ids_document_id_gives(pk: int) -> None:
    assert id_reader(Sample)(pk) == document_id(pk)


@pytest.mark.django_db
def test_a_foreign_key_is_the_related_document_id(record: Record) -> None:
    fields, _ = instance_and_values(record)
    assert fields["owner"] == "--owner" == document_id("-owner")
    assert fields["keyed"] == str(U1)


@pytest.mark.django_db
def test_a_file_is_its_name(record: Record) -> None:
    fields, _ = instance_and_values(record)
    assert fields["file"] == "docs/report.pdf"


@pytest.mark.django_db
def test_binary_data_read_back_is_bytes(record: Record) -> None:
    loaded = Record.objects.get(pk=record.pk)
    assert isinstance(loaded.blob, memoryview)  # as psycopg2 returns bytea
    fields = document_fields(loaded)
    assert type(fields["blob"]) is bytes
    assert fields["blob"] == b"\x00\xffdata"
    assert decode(encode(Change("save", "c", "1", fields))).fields["blob"] == b"\x00\xffdata"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "written"),
    [
        ("num", 7),
        ("day", datetime.date(2020, 2, 3)),
        ("amount", Decimal("1.500")),
        ("stamp", datetime.datetime(2020, 2, 3, 4, 5, 6, 789123, tzinfo=UTC)),
        ("uid", U1),
        # Django saves these without converting the instance's attribute:
        ("num", "7"),
        ("ratio", "0.5"),
        ("flag", 1),
        ("day", "2020-2-3"),
        ("amount", Decimal("1.5")),
        ("amount", 2),
        ("stamp", "2020-02-03T04:05:06Z"),
        ("uid", U1.hex),
    ],
    ids=repr,
)
def test_the_instance_a_writer_saved_gives_the_document_of_the_row_saved(field: str, written: Any) -> None:
    """A save sends the document built from the writer's instance (`dddp.signals`) with no query:
    clients must get what a later read of the row gives them."""
    created = Sample.objects.create(**{field: written})
    row = Sample.objects.filter(pk=created.pk).values(*value_attnames(Sample)).get()
    sent = document_fields(created)[field]
    read = fields_from_values(Sample, row)[field]
    assert on_the_wire(sent) == on_the_wire(read)


@pytest.mark.django_db
def test_a_saved_uuid_key_written_as_hex_is_sent_under_the_id_of_its_row(monkeypatch: Any) -> None:
    """The id of a save's Change must be the id a publication's read of the row gives."""
    sent: list[Change] = []
    monkeypatch.setattr(signals, "send", lambda using, change: sent.append(change))
    created = UuidKeyed.objects.create(id=U1.hex, name="x")
    [change] = sent
    assert change.id == document_id(UuidKeyed.objects.get().pk) == str(U1)
    assert created.pk == U1.hex  # what the writer's instance holds


@pytest.mark.django_db
def test_a_save_sends_the_document_of_the_row_saved(monkeypatch: Any) -> None:
    sent: list[Change] = []
    monkeypatch.setattr(signals, "send", lambda using, change: sent.append(change))
    Record.objects.create(title="t", amount=Decimal("3"), stamp="2020-02-03T04:05:06Z", uid=U1.hex)
    [change] = sent
    row = Record.objects.values(*value_attnames(Record)).get()
    assert on_the_wire(change.fields) == on_the_wire(fields_from_values(Record, row))


# --- many-to-many ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_many_to_many_ids_are_in_the_order_added_with_empty_lists() -> None:
    ids = [uuid.UUID(int=n) for n in (0xC, 0xA, 0xB)]
    tags = [UuidKeyed.objects.create(id=i) for i in ids]
    one, two, three = (Record.objects.create(title=t) for t in ("one", "two", "three"))
    for tag in tags:  # one at a time: added in this order, which is not sorted
        one.tags.add(tag)
    two.tags.add(tags[2])
    two.tags.add(tags[1])
    field = Record._meta.get_field("tags")
    assert isinstance(field, models.ManyToManyField)
    assert many_to_many_ids(Record, field, [one.pk, two.pk, three.pk]) == {
        one.pk: [str(i) for i in ids],
        two.pk: [str(ids[2]), str(ids[1])],
        three.pk: [],
    }
    assert list(many_to_many_ids(Record, field, [three.pk, one.pk])) == [three.pk, one.pk]
    assert many_to_many_ids(Record, field, []) == {}


@pytest.mark.django_db
def test_many_to_many_ids_after_a_removal_and_a_re_add() -> None:
    a, b = UuidKeyed.objects.create(), UuidKeyed.objects.create()
    record = Record.objects.create(title="r")
    record.tags.add(a)
    record.tags.add(b)
    record.tags.remove(a)
    record.tags.add(a)
    field = Record._meta.get_field("tags")
    assert isinstance(field, models.ManyToManyField)
    assert many_to_many_ids(Record, field, [record.pk]) == {record.pk: [str(b.pk), str(a.pk)]}


# --- the delivered form ------------------------------------------------------------------------------


def test_canonical_gives_fields_as_a_payload_delivers_them() -> None:
    fields = {
        "day": datetime.date(2024, 2, 29),
        "amount": Decimal("1.50"),
        "uid": U1,
        "when": datetime.datetime(2024, 2, 29, 12, 30, 1, 123999, tzinfo=UTC),
        "naive": datetime.datetime(2024, 2, 29, 12, 30, 1, 123999),
        "east": datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        "blob": memoryview(b"\x01"),
        "nested": {"list": [datetime.date(2020, 1, 1), Decimal("2")]},
        "text": "x",
        "n": 1,
        "none": None,
    }
    assert canonical(fields) == {
        "day": "2024-02-29",
        "amount": "1.50",
        "uid": str(U1),
        "when": datetime.datetime(2024, 2, 29, 12, 30, 1, 123000, tzinfo=UTC),
        "naive": datetime.datetime(2024, 2, 29, 12, 30, 1, 123000, tzinfo=UTC),
        "east": datetime.datetime(2024, 2, 29, 10, 0, tzinfo=UTC),
        "blob": b"\x01",
        "nested": {"list": ["2020-01-01", "2"]},
        "text": "x",
        "n": 1,
        "none": None,
    }
    assert canonical(fields) == decode(encode(Change("save", "c", "1", fields))).fields
    assert canonical(canonical(fields)) == canonical(fields)
