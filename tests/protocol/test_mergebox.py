"""Unit tests for dddp.protocol.mergebox: one session's merged view (D-70..D-76, D-53, D-56, D-58).

Scenario tests read as the client's side of the wire; a randomized model-based test
replays thousands of operations against a naive model of Meteor's precedence rule and
a strict (Meteor 1.x) client store.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from collections.abc import Hashable, Iterable
from typing import Any

import pytest

from dddp.protocol import ejson, messages
from dddp.protocol.mergebox import Mergebox, Outgoing

UTC = dt.timezone.utc


def wire(out: Outgoing | None) -> Any:
    """The parsed message text, or None when nothing is sent."""
    return None if out is None else json.loads(out.to_message())


def added_msg(id: str, fields: dict[str, Any], collection: str = "c") -> dict[str, Any]:
    return json.loads(messages.added(collection, id, fields))


def changed_msg(id: str, fields: dict[str, Any], cleared: Iterable[str] = (), collection: str = "c") -> Any:
    return json.loads(messages.changed(collection, id, fields, cleared))


# --- D-76: the five cases the checklist asks for ------------------------------


def test_d76a_two_subs_same_doc_one_added_then_changed_with_only_new_fields() -> None:
    box = Mergebox()
    first = box.added("A", "c", "x", {"a": 1, "b": 2})
    assert wire(first) == added_msg("x", {"a": 1, "b": 2})
    assert first is not None and first.passthrough
    second = box.added("B", "c", "x", {"b": 3, "c": 4})
    assert wire(second) == changed_msg("x", {"c": 4})  # b keeps A's value (D-75)
    assert second is not None and not second.passthrough
    assert box.document("c", "x") == {"a": 1, "b": 2, "c": 4}
    assert len(box) == 1


def test_d76b_unsub_one_sends_changed_and_cleared_but_no_removed() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"a": 1, "b": 2})
    box.added("B", "c", "x", {"b": 3, "c": 4})
    out = box.remove_subscription("A")
    assert [wire(o) for o in out] == [changed_msg("x", {"b": 3}, ["a"])]
    assert not out[0].passthrough
    assert box.document("c", "x") == {"b": 3, "c": 4}
    assert box.holds("c", "x")


def test_d76c_unsub_the_other_sends_removed() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"a": 1})
    box.added("B", "c", "x", {"b": 3})
    box.remove_subscription("A")
    out = box.remove_subscription("B")
    assert [wire(o) for o in out] == [{"msg": "removed", "collection": "c", "id": "x"}]
    assert out[0].passthrough
    assert not box.holds("c", "x") and len(box) == 0 and box.document("c", "x") is None


def test_d76d_change_from_the_non_winning_sub_sends_nothing() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"f": 2})
    assert box.changed("B", "c", "x", {"f": 5}) is None
    assert box.document("c", "x") == {"f": 1}
    # B's queued value was updated: it shows once A withdraws.
    assert wire(box.removed("A", "c", "x")) == changed_msg("x", {"f": 5})


def test_d76e_identical_republish_sends_nothing() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1, "g": [1, {"k": "v"}]})
    assert box.changed("A", "c", "x", {"f": 1, "g": [1, {"k": "v"}]}) is None
    assert box.added("B", "c", "x", {"f": 1}) is None  # nothing new to the document
    assert box.changed("A", "c", "x", {"f": 1}) is None


# --- D-72: a change shows only when the shown value really changes -------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (1, 1.0),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), dt.datetime(2024, 1, 2, 3, 4, 5)),  # naive is UTC
        (dt.datetime(2024, 1, 2, tzinfo=UTC), dt.datetime(2024, 1, 2, 0, 0, 0, 999, tzinfo=UTC)),  # same ms
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        (b"\x00\x01", b"\x00\x01"),
    ],
)
def test_d72_ejson_equal_values_are_suppressed(old: Any, new: Any) -> None:
    single = Mergebox()
    single.added("A", "c", "x", {"f": old})
    assert single.changed("A", "c", "x", {"f": new}) is None
    shared = Mergebox()
    shared.added("A", "c", "x", {"f": old})
    shared.added("B", "c", "x", {"f": 0})
    assert shared.changed("A", "c", "x", {"f": new}) is None


@pytest.mark.parametrize(("old", "new"), [(1, True), (0, False), (1, "1"), (None, 0), ([1], [1, 1])])
def test_d72_values_that_differ_in_ejson_are_sent(old: Any, new: Any) -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": old})
    out = box.changed("A", "c", "x", {"f": new})
    assert wire(out) == changed_msg("x", {"f": new})
    assert out is not None and out.passthrough


def test_d72_change_from_the_shown_sub_is_sent_and_passes_through() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"f": 2, "g": 3})
    fields = {"f": 10}
    out = box.changed("A", "c", "x", fields)
    assert out is not None and out.passthrough and out.fields == fields
    assert out.to_message() == messages.changed("c", "x", fields)


def test_d72_sub_starting_to_supply_a_shown_field_queues_behind() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {})
    box.added("B", "c", "x", {"f": 2})
    assert box.changed("A", "c", "x", {"f": 1}) is None  # B supplied f first
    assert wire(box.changed("B", "c", "x", {}, ["f"])) == changed_msg("x", {"f": 1})


# --- D-73: clearing a field -----------------------------------------------------


def test_d73_only_supplier_clears_field_sends_cleared() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1, "g": 2})
    out = box.changed("A", "c", "x", {}, ["f"])
    assert wire(out) == changed_msg("x", {}, ["f"])
    assert out is not None and out.passthrough and out.cleared == ("f",)
    assert box.document("c", "x") == {"g": 2}


def test_d73_shown_value_cleared_next_value_shows() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"f": 2})
    out = box.changed("A", "c", "x", {}, ["f"])
    assert wire(out) == changed_msg("x", {"f": 2})
    assert out is not None and not out.passthrough
    assert box.document("c", "x") == {"f": 2}


def test_d73_shown_value_cleared_next_value_equal_sends_nothing() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"f": 1.0})
    assert box.changed("A", "c", "x", {}, ["f"]) is None


def test_d73_queued_value_cleared_sends_nothing() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"f": 2})
    assert box.changed("B", "c", "x", {}, ["f"]) is None
    assert box.removed("A", "c", "x") == Outgoing("changed", "c", "x", {}, ("f",))


def test_d73_clearing_an_absent_field_or_id_sends_nothing() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    assert box.changed("A", "c", "x", {}, ["nope", "_id"]) is None
    out = box.changed("A", "c", "x", {}, ["f", "nope"])
    assert wire(out) == changed_msg("x", {}, ["f"])
    assert out is not None and not out.passthrough  # the sub's own message also cleared "nope"


def test_d73_set_and_clear_in_one_change_combine() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"f": 2, "g": 3})
    out = box.changed("A", "c", "x", {"h": 4}, ["f"])
    assert wire(out) == changed_msg("x", {"h": 4, "f": 2})
    assert out is not None and not out.passthrough  # same field count as the sub's, other fields


# --- D-74: a sub removes a document ---------------------------------------------


def test_d74_only_holder_removes_sends_removed() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    out = box.removed("A", "c", "x")
    assert out == Outgoing("removed", "c", "x", {}, passthrough=True)
    assert out is not None and out.to_message() == messages.removed("c", "x")
    assert not box.holds("c", "x")


def test_d74_one_of_two_holders_removes_sends_one_changed() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"shared": 1, "own": 2, "same": 5, "hidden": 0})
    box.added("B", "c", "x", {"shared": 9, "same": 5.0, "theirs": 3})
    out = box.removed("A", "c", "x")
    assert wire(out) == changed_msg("x", {"shared": 9}, ["own", "hidden"])
    assert box.document("c", "x") == {"shared": 9, "same": 5.0, "theirs": 3}


def test_d74_removing_a_sub_that_showed_nothing_sends_nothing() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"f": 2})
    assert box.removed("B", "c", "x") is None
    # Back to a single holder, whose later changes pass through again.
    out = box.changed("A", "c", "x", {"f": 3})
    assert out is not None and out.passthrough


def test_d74_three_holders_next_in_precedence_wins() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("B", "c", "x", {"g": 0})
    box.added("C", "c", "x", {"f": 3})
    assert box.changed("B", "c", "x", {"f": 2}) is None  # B supplies f after C did
    assert wire(box.removed("A", "c", "x")) == changed_msg("x", {"f": 3})
    assert wire(box.removed("C", "c", "x")) == changed_msg("x", {"f": 2})


def test_d53_remove_subscription_withdraws_everything_it_published() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    box.added("A", "c", "y", {"f": 1})
    box.added("A", "d", "x", {"f": 1})
    box.added("B", "c", "y", {"g": 2})
    box.added("B", "d", "z", {"g": 2})
    out = box.remove_subscription("A")
    assert sorted(json.dumps(wire(o), sort_keys=True) for o in out) == sorted(
        json.dumps(m, sort_keys=True)
        for m in [
            {"msg": "removed", "collection": "c", "id": "x"},
            {"msg": "removed", "collection": "d", "id": "x"},
            changed_msg("y", {}, ["f"]),
        ]
    )
    assert [o.passthrough for o in out] == [o.kind == "removed" for o in out]
    assert len(box) == 2
    assert box.remove_subscription("A") == []
    assert box.remove_subscription("never") == []


# --- D-56, passthrough, collections, inputs ---------------------------------------


def test_d56_id_in_fields_is_ignored_and_not_passed_through() -> None:
    box = Mergebox()
    out = box.added("A", "c", "x", {"_id": "x", "f": 1})
    assert wire(out) == added_msg("x", {"f": 1})
    assert out is not None and not out.passthrough
    assert box.changed("A", "c", "x", {"_id": "y"}) is None
    assert box.document("c", "x") == {"f": 1}
    assert box.added("B", "c", "x", {"_id": "x"}) is None
    assert box.document("c", "x") == {"f": 1}


def test_passthrough_added_is_the_subs_own_dict_and_text() -> None:
    box = Mergebox()
    fields = {"b": 2, "a": [1, 2], "when": dt.datetime(2020, 1, 1, tzinfo=UTC)}
    out = box.added("A", "c", "x", fields)
    assert out is not None and out.passthrough and out.fields is fields
    assert out.to_message() == messages.added("c", "x", fields)
    empty = box.added("A", "c", "y", {})
    assert wire(empty) == {"msg": "added", "collection": "c", "id": "y"}
    assert empty is not None and empty.passthrough


def test_changed_with_a_suppressed_field_is_not_a_passthrough() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1, "g": 1})
    out = box.changed("A", "c", "x", {"f": 1, "g": 2})
    assert wire(out) == changed_msg("x", {"g": 2})
    assert out is not None and not out.passthrough


def test_changed_keeps_the_after_dict_by_reference() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1, "g": 1})
    after = {"f": 2}
    out = box.changed("A", "c", "x", {"f": 2}, ["g"], after=after)
    assert wire(out) == changed_msg("x", {"f": 2}, ["g"])
    assert out is not None and out.passthrough and out.cleared == ("g",)
    assert box.document("c", "x") == after
    assert box.added("B", "c", "x", {"h": 1}) is not None  # precedence lists built from `after`
    assert box.document("c", "x") == {"f": 2, "h": 1}


def test_same_id_in_different_collections_is_independent() -> None:
    box = Mergebox()
    assert wire(box.added("A", "one", "x", {"f": 1})) == added_msg("x", {"f": 1}, "one")
    assert wire(box.added("B", "two", "x", {"f": 2})) == added_msg("x", {"f": 2}, "two")
    assert box.removed("A", "one", "x") == Outgoing("removed", "one", "x", {}, passthrough=True)
    assert box.document("two", "x") == {"f": 2} and not box.holds("one", "x")
    with pytest.raises(ValueError, match="does not hold"):
        box.changed("A", "two", "x", {"f": 3})


def test_inputs_are_never_mutated() -> None:
    box = Mergebox()
    a = {"f": 1, "g": {"n": [1]}}
    b = {"f": 2, "h": 3}
    change = {"f": 5, "k": 1}
    snapshots = copy.deepcopy((a, b, change))
    box.added("A", "c", "x", a)
    box.changed("A", "c", "x", change, ["g"])
    box.added("B", "c", "x", b)
    box.changed("B", "c", "x", {}, ["h"])
    box.remove_subscription("A")
    assert (a, b, change) == snapshots


def test_documents_all_new_to_the_client_are_recorded_at_once_as_their_own_added() -> None:
    box = Mergebox()
    docs = {"x": {"f": 1}, "y": {"f": 2}}
    assert box.added_all_new("A", "c", docs)
    docs["z"] = {"f": 3}  # the caller's mapping is copied, its field dicts kept
    assert len(box) == 2 and box.document("c", "y") == {"f": 2}
    assert box.changed("A", "c", "x", {"f": 5}) == Outgoing("changed", "c", "x", {"f": 5}, (), True)
    assert box.added_all_new("B", "c", {"z": {"g": 1}})  # other ids: still all new
    assert not box.added_all_new("C", "c", {"w": {}, "y": {"g": 1}})  # y is held (by A)
    assert not box.added_all_new("D", "c", {"v": {"_id": "v"}})  # D-56: not its own text
    assert len(box) == 3 and not box.holds("c", "w") and not box.holds("c", "v")
    assert [wire(o) for o in box.remove_subscription("A")] == [
        {"msg": "removed", "collection": "c", "id": "x"},
        {"msg": "removed", "collection": "c", "id": "y"},
    ]
    assert box.added_all_new("E", "empty", {}) and len(box) == 1


# --- caller bugs ----------------------------------------------------------------


def test_changed_or_removed_for_a_doc_the_client_lacks_raises() -> None:
    box = Mergebox()
    with pytest.raises(ValueError, match="does not hold c/x"):
        box.changed("A", "c", "x", {"f": 1})
    with pytest.raises(ValueError, match="does not hold c/x"):
        box.removed("A", "c", "x")


@pytest.mark.parametrize("holders", [["B"], ["B", "C"]])
def test_changed_or_removed_from_a_sub_not_holding_the_doc_raises(holders: list[str]) -> None:
    box = Mergebox()
    for sub in holders:
        box.added(sub, "c", "x", {"f": sub})
    before = box.document("c", "x")
    with pytest.raises(ValueError, match="'A' does not hold c/x"):
        box.changed("A", "c", "x", {"f": 1})
    with pytest.raises(ValueError, match="'A' does not hold c/x"):
        box.removed("A", "c", "x")
    assert box.document("c", "x") == before


@pytest.mark.parametrize("holders", [["A"], ["A", "B"], ["B", "A"]])
def test_adding_a_doc_the_sub_already_holds_raises(holders: list[str]) -> None:
    box = Mergebox()
    for sub in holders:
        box.added(sub, "c", "x", {"f": sub})
    before = box.document("c", "x")
    with pytest.raises(ValueError, match="'A' already added c/x"):
        box.added("A", "c", "x", {"g": 1})
    assert box.document("c", "x") == before


def test_a_field_both_set_and_cleared_raises() -> None:
    box = Mergebox()
    box.added("A", "c", "x", {"f": 1})
    with pytest.raises(ValueError, match="both set and cleared"):
        box.changed("A", "c", "x", {"f": 2}, ["f"])
    with pytest.raises(TypeError, match="not a str"):
        box.changed("A", "c", "x", {}, "f")
    assert box.document("c", "x") == {"f": 1}


# --- randomized model-based test --------------------------------------------------


class StrictClient:
    """A Meteor 1.x client's store: rejects what D-58 forbids, and redundant updates."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    def apply(self, out: Outgoing) -> None:
        msg = json.loads(out.to_message())  # also checks the text is valid
        key = (msg["collection"], msg["id"])
        if msg["msg"] == "added":
            assert key not in self.docs, f"duplicate added {key}"
            self.docs[key] = ejson.from_json_value(msg.get("fields", {}))
        elif msg["msg"] == "changed":
            assert key in self.docs, f"changed for unknown {key}"
            doc = self.docs[key]
            fields = ejson.from_json_value(msg.get("fields", {}))
            cleared = msg.get("cleared", [])
            assert fields or cleared, "empty changed"
            for name, value in fields.items():
                assert name not in doc or not ejson.equals(doc[name], value), f"redundant {name}"
                doc[name] = value
            for name in cleared:
                assert name in doc, f"cleared absent {name}"
                del doc[name]
        else:
            assert msg["msg"] == "removed"
            assert self.docs.pop(key, None) is not None, f"removed unknown {key}"


class Model:
    """Naive reference: each sub's documents, each field stamped when the sub started supplying it.

    Meteor appends a sub to a field's precedence list when it starts supplying the field,
    so the shown value is the one with the oldest stamp.
    """

    def __init__(self) -> None:
        self.subs: dict[Hashable, dict[tuple[str, str], dict[str, tuple[Any, int]]]] = {}
        self.clock = 0

    def _stamp(self) -> int:
        self.clock += 1
        return self.clock

    def added(self, sub: Hashable, key: tuple[str, str], fields: dict[str, Any]) -> None:
        self.subs.setdefault(sub, {})[key] = {
            name: (value, self._stamp()) for name, value in fields.items() if name != "_id"
        }

    def changed(
        self, sub: Hashable, key: tuple[str, str], fields: dict[str, Any], cleared: list[str]
    ) -> None:
        doc = self.subs[sub][key]
        for name, value in fields.items():
            if name != "_id":
                doc[name] = (value, doc[name][1] if name in doc else self._stamp())
        for name in cleared:
            doc.pop(name, None)

    def own(self, sub: Hashable, key: tuple[str, str]) -> dict[str, Any]:
        return {name: value for name, (value, _) in self.subs[sub][key].items()}

    def holds(self, sub: Hashable, key: tuple[str, str]) -> bool:
        return key in self.subs.get(sub, {})

    def merged(self) -> dict[tuple[str, str], dict[str, Any]]:
        best: dict[tuple[str, str], dict[str, tuple[Any, int]]] = {}
        for docs in self.subs.values():
            for key, doc in docs.items():
                view = best.setdefault(key, {})
                for name, (value, stamp) in doc.items():
                    if name not in view or stamp < view[name][1]:
                        view[name] = (value, stamp)
        return {key: {name: value for name, (value, _) in doc.items()} for key, doc in best.items()}


SUBS = ["s1", "s2", "s3"]
COLLECTIONS = ["c1", "c2"]
IDS = ["a", "b", "c", "d", "e"]
FIELDS = ["f", "g", "h", "i"]
VALUES: list[Any] = [
    0, 1, 1.0, 2, True, False, None, "x", "y", [1, 2], {"k": 1}, {"k": 1.0},
    dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2020, 1, 1, 0, 0, 0, 300),
]  # fmt: skip


def same_view(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(ejson.equals(a[name], b[name]) for name in a)


def check_passthrough(out: Outgoing, kind: str, alone: str | None) -> None:
    """`passthrough` is set exactly when the text is the sub's own message."""
    assert out.passthrough == (out.kind == kind and out.to_message() == alone)


@pytest.mark.parametrize("seed", range(50))
def test_random_operations_match_meteors_mergebox(seed: int) -> None:
    rng = random.Random(seed)
    box, model, client = Mergebox(), Model(), StrictClient()

    def random_fields(names: list[str]) -> dict[str, Any]:
        return {name: rng.choice(VALUES) for name in names if rng.random() < 0.6}

    for _ in range(200):
        sub = rng.choice(SUBS)
        key = (rng.choice(COLLECTIONS), rng.choice(IDS))
        collection, doc_id = key
        roll = rng.random()
        outs: list[Outgoing] = []
        if roll < 0.05:
            outs = box.remove_subscription(sub)
            model.subs.pop(sub, None)
            for out in outs:
                assert out.passthrough == (out.kind == "removed")
        elif roll < 0.08:
            # Caller bugs raise and change nothing.
            before = box.document(collection, doc_id)
            with pytest.raises(ValueError):
                if model.holds(sub, key):
                    box.added(sub, collection, doc_id, {"f": 1})
                elif rng.random() < 0.5:
                    box.changed(sub, collection, doc_id, {"f": 1})
                else:
                    box.removed(sub, collection, doc_id)
            assert box.document(collection, doc_id) == before
        elif roll < 0.14 and not any(model.holds(sub, (collection, id)) for id in IDS):
            # A new subscription's documents, all at once where the client holds none of them.
            docs = {id: random_fields(FIELDS) for id in IDS if rng.random() < 0.5}
            if docs and rng.random() < 0.1:
                docs[next(iter(docs))]["_id"] = "x"
            snapshot = copy.deepcopy(docs)
            if box.added_all_new(sub, collection, docs):
                for id, fields in docs.items():
                    outs.append(Outgoing("added", collection, id, fields, passthrough=True))
                    model.added(sub, (collection, id), fields)
            else:
                for id, fields in docs.items():
                    message = box.added(sub, collection, id, fields)
                    model.added(sub, (collection, id), fields)
                    if message is not None:
                        outs.append(message)
            assert docs == snapshot
        elif not model.holds(sub, key):
            fields = random_fields(FIELDS)
            if rng.random() < 0.05:
                fields["_id"] = doc_id
            snapshot = copy.deepcopy(fields)
            message = box.added(sub, collection, doc_id, fields)
            model.added(sub, key, fields)
            if message is not None:
                check_passthrough(message, "added", messages.added(collection, doc_id, fields))
                outs = [message]
            assert fields == snapshot
        elif roll < 0.25:
            message = box.removed(sub, collection, doc_id)
            model.subs[sub].pop(key)
            if message is not None:
                check_passthrough(message, "removed", messages.removed(collection, doc_id))
                outs = [message]
        else:
            fields = random_fields(FIELDS)
            cleared = [name for name in FIELDS if name not in fields and rng.random() < 0.3]
            if rng.random() < 0.05:
                fields["_id"] = doc_id
            snapshots = copy.deepcopy((fields, cleared))
            model.changed(sub, key, fields, cleared)
            after = model.own(sub, key) if rng.random() < 0.5 else None
            message = box.changed(sub, collection, doc_id, fields, iter(cleared), after=after)
            if message is not None:
                alone = messages.changed(collection, doc_id, fields, cleared)
                check_passthrough(message, "changed", alone)
                outs = [message]
            assert (fields, cleared) == snapshots

        for out in outs:
            client.apply(out)
        merged = model.merged()
        assert client.docs.keys() == merged.keys()
        for (coll, id), view in merged.items():
            assert same_view(client.docs[(coll, id)], view), (coll, id)
            document = box.document(coll, id)
            assert document is not None and same_view(document, view)
        assert len(box) == len(merged)
        for coll in COLLECTIONS:
            for id in IDS:
                assert box.holds(coll, id) == ((coll, id) in merged)


def test_change_against_the_dict_the_session_holds_passes_through_without_comparing() -> None:
    """`before` is the caller's old dict: if the session holds that very object, trust the diff."""
    box = Mergebox()
    old = {"a": 1, "b": 2}
    box.added("s1", "c", "x", old)
    new = {"a": 1, "b": 3}
    out = box.changed("s1", "c", "x", {"b": 3}, after=new, before=old)
    assert out is not None and out.passthrough and out.fields == {"b": 3}
    assert box.document("c", "x") == new


def test_change_with_a_stale_before_is_compared_field_by_field() -> None:
    box = Mergebox()
    box.added("s1", "c", "x", {"a": 1})
    unrelated = {"a": 1}
    out = box.changed("s1", "c", "x", {"a": 1.0}, after={"a": 1.0}, before=unrelated)
    assert out is None  # EJSON-equal: suppressed by the comparison (D-72)
