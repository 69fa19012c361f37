"""Unit tests for dddp.protocol.ejson against spec section 2 (E-1 .. E-31, tables 2.1 and 2.4)."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import json
import math
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from dddp.protocol import ejson
from dddp.protocol.ejson import (
    EJSONDecodeError,
    RegExp,
    dumps,
    equals,
    from_json_value,
    loads,
    to_json_value,
)

UTC = dt.timezone.utc


def round_trip(value: Any) -> Any:
    return loads(dumps(value))


class Point:
    """A custom EJSON type (table 2.1 "Custom type")."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def to_json_value(self) -> ejson.JSONValue:
        return {"x": self.x, "y": self.y}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


@pytest.fixture
def point_type() -> Iterator[None]:
    ejson.register_type("point", Point, lambda v: Point(v["x"], v["y"]))
    yield
    ejson.unregister_type("point")


# --- table 2.1 / 2.4: plain JSON rows -------------------------------------------


@pytest.mark.parametrize("value", [None, True, False, "", "text", "ünïcødé ☃ 😀"])
def test_none_bool_and_str_pass_through_unchanged(value: Any) -> None:
    assert to_json_value(value) is value
    assert round_trip(value) == value


def test_bool_stays_bool_and_is_not_encoded_as_a_number() -> None:
    assert dumps([True, False]) == "[true,false]"
    assert type(round_trip(True)) is bool


@pytest.mark.parametrize("value", [0, 1, -1, 2**53 - 1, -(2**53 - 1)])
def test_safe_integers_are_numbers(value: int) -> None:
    assert dumps(value) == str(value)
    assert type(round_trip(value)) is int
    assert round_trip(value) == value


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**30])
def test_integers_beyond_js_precision_are_sent_as_decimal_strings(value: int) -> None:
    # table 2.4: a JS number would silently lose precision above 2**53 - 1
    assert to_json_value(value) == str(value)
    assert round_trip(value) == str(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("9007199254740993", 9007199254740992.0), ("-1" + "0" * 20, -1e20), ("1" + "0" * 400, math.inf)],
)
def test_integers_beyond_js_precision_decode_to_the_float_js_would_see(text: str, expected: float) -> None:
    decoded = loads(f"[{text}]")[0]
    assert type(decoded) is float
    assert decoded == expected
    assert from_json_value(int(text)) == expected


def test_json_numbers_decode_to_int_without_fraction_and_float_with_fraction() -> None:
    assert loads("[1, 1.0, 1.5, 1e3]") == [1, 1.0, 1.5, 1000.0]
    assert [type(v) for v in loads("[1, 1.0, 1e3]")] == [int, float, float]


@pytest.mark.parametrize("value", [0.5, -2.25, 1e300, 5e-324])
def test_finite_floats_are_numbers(value: float) -> None:
    assert to_json_value(value) == value
    assert round_trip(value) == value


@pytest.mark.parametrize(
    ("value", "wire"),
    [(math.nan, {"$InfNaN": 0}), (math.inf, {"$InfNaN": 1}), (-math.inf, {"$InfNaN": -1})],
)
def test_nan_and_infinities_are_infnan(value: float, wire: dict[str, int]) -> None:
    assert to_json_value(value) == wire
    assert equals(round_trip(value), value)
    assert json.loads(dumps(value)) == wire  # valid JSON, no NaN literal


@pytest.mark.parametrize(("sign", "expected"), [(5, math.inf), (-0.5, -math.inf), (0, math.nan)])
def test_infnan_decodes_by_sign(sign: float, expected: float) -> None:
    # table 2.1: Meteor decodes $InfNaN as sign / 0
    assert equals(loads(json.dumps({"$InfNaN": sign})), expected)


def test_list_and_tuple_encode_as_arrays_and_decode_as_lists() -> None:
    assert dumps((1, [2, (3,)])) == "[1,[2,[3]]]"
    assert round_trip((1, (2,))) == [1, [2]]


def test_dict_with_str_keys_is_an_object_keeping_key_order() -> None:
    # E-20: insertion order is kept
    assert dumps({"b": 1, "a": {"d": 2, "c": 3}}) == '{"b":1,"a":{"d":2,"c":3}}'
    assert list(round_trip({"b": 1, "a": 2})) == ["b", "a"]


# --- datetime ---------------------------------------------------------------------


def test_datetime_one_millisecond_after_epoch_is_date_1() -> None:
    # E-31
    assert to_json_value(dt.datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)) == {"$date": 1}


def test_aware_datetime_is_converted_to_utc_milliseconds() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    value = dt.datetime(2020, 5, 17, 12, 30, 15, 123000, tzinfo=plus2)
    assert to_json_value(value) == {"$date": 1589711415123}
    decoded = round_trip(value)
    assert decoded == value
    assert decoded.tzinfo == UTC
    assert decoded.hour == 10


def test_naive_datetime_is_taken_as_utc() -> None:
    naive = dt.datetime(2020, 5, 17, 10, 30, 15, 123000)  # naive on purpose
    assert to_json_value(naive) == {"$date": 1589711415123}
    assert round_trip(naive) == naive.replace(tzinfo=UTC)


def test_datetime_is_truncated_to_millisecond_precision() -> None:
    value = dt.datetime(2021, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
    assert round_trip(value) == value.replace(microsecond=678000)


def test_datetime_before_epoch_is_negative_milliseconds() -> None:
    value = dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert to_json_value(value) == {"$date": -1}
    assert round_trip(value) == value


def test_date_decodes_to_aware_utc_datetime_and_accepts_float_ms() -> None:
    # table 2.1: accept floats on input; JS Date keeps whole ms
    assert loads('{"$date": 1.9}') == dt.datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    assert loads('{"$date": 1589711415123}') == dt.datetime(2020, 5, 17, 10, 30, 15, 123000, tzinfo=UTC)


def test_date_is_an_iso_string() -> None:
    assert to_json_value(dt.date(2024, 2, 29)) == "2024-02-29"


def test_time_is_an_iso_string() -> None:
    assert to_json_value(dt.time(13, 5, 9, 250000)) == "13:05:09.250000"


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (dt.timedelta(seconds=90), 90000),
        (dt.timedelta(milliseconds=1.5), 1.5),
        (dt.timedelta(days=-1), -86400000),
        (dt.timedelta(microseconds=-1), -0.001),
    ],
)
def test_timedelta_is_a_number_of_milliseconds(value: dt.timedelta, wire: float) -> None:
    assert to_json_value(value) == wire
    assert type(to_json_value(value)) is type(wire)


# --- binary ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "wire"), [(b"", ""), (b"a", "YQ=="), (b"ab", "YWI="), (b"abc", "YWJj")])
def test_binary_is_padded_base64_for_lengths_0_to_3(value: bytes, wire: str) -> None:
    # E-31
    assert to_json_value(value) == {"$binary": wire}
    assert round_trip(value) == value


def test_binary_uses_the_standard_alphabet() -> None:
    assert to_json_value(b"\xfb\xff\xbf") == {"$binary": "+/+/"}


@pytest.mark.parametrize("value", [bytearray(b"\x00\x01"), memoryview(b"\x00\x01")])
def test_bytearray_and_memoryview_encode_as_binary_and_decode_as_bytes(value: Any) -> None:
    assert to_json_value(value) == {"$binary": "AAE="}
    decoded = round_trip(value)
    assert type(decoded) is bytes
    assert decoded == b"\x00\x01"


# --- other table 2.4 rows -----------------------------------------------------------


def test_decimal_is_its_string() -> None:
    assert to_json_value(Decimal("1.50")) == "1.50"
    assert round_trip([Decimal("-0.001")]) == ["-0.001"]


def test_uuid_is_its_string() -> None:
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert round_trip(value) == "12345678-1234-5678-1234-567812345678"


def test_regexp_round_trips() -> None:
    value = RegExp("^a+b$", "gi")
    assert to_json_value(value) == {"$regexp": "^a+b$", "$flags": "gi"}
    assert round_trip(value) == value


def test_compiled_pattern_encodes_with_js_flags() -> None:
    pattern = re.compile("a.b", re.IGNORECASE | re.MULTILINE | re.DOTALL)
    assert to_json_value(pattern) == {"$regexp": "a.b", "$flags": "ims"}
    assert to_json_value(re.compile("x")) == {"$regexp": "x", "$flags": ""}


def test_regexp_decoding_keeps_only_gimuy_flags_deduplicated() -> None:
    # table 2.1: Meteor filters flags with /[^gimuy]/ then drops earlier duplicates
    assert loads('{"$regexp": "a", "$flags": "gigsmxyy"}') == RegExp("a", "igmy")


def test_regexp_flags_are_cut_at_50_characters() -> None:
    flags = "x" * 50 + "g"
    assert loads(json.dumps({"$regexp": "a", "$flags": flags})) == RegExp("a", "")


def test_registered_custom_type_round_trips(point_type: None) -> None:
    assert to_json_value(Point(1, 2)) == {"$type": "point", "$value": {"x": 1, "y": 2}}
    assert round_trip({"p": [Point(3, 4)]}) == {"p": [Point(3, 4)]}


def test_registering_a_name_twice_for_another_class_is_refused(point_type: None) -> None:
    class Other:
        def to_json_value(self) -> ejson.JSONValue:
            return 1

    with pytest.raises(ValueError, match="already registered"):
        ejson.register_type("point", Other, lambda v: Other())
    with pytest.raises(ValueError, match="already registered"):
        ejson.register_type("point2", Point, lambda v: Point(0, 0))


def test_unknown_custom_type_is_a_decode_error() -> None:
    # E-2: the DDP layer answers "Parse error"
    with pytest.raises(EJSONDecodeError, match="not defined"):
        loads('{"$type": "nope", "$value": 1}')


def test_unregistered_type_is_unknown_again(point_type: None) -> None:
    ejson.unregister_type("point")
    with pytest.raises(EJSONDecodeError):
        loads('{"$type": "point", "$value": {"x": 1, "y": 2}}')
    with pytest.raises(TypeError, match="Point"):
        to_json_value(Point(1, 2))


def test_custom_factory_rejecting_its_value_is_a_decode_error(point_type: None) -> None:
    with pytest.raises(EJSONDecodeError, match="point"):
        loads('{"$type": "point", "$value": 7}')


def test_str_int_and_dict_subclasses_encode_as_their_base_type() -> None:
    class Colour(str, enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    value = collections.OrderedDict([("c", Colour.RED), ("l", Level.HIGH)])
    encoded = to_json_value(value)
    assert encoded == {"c": "red", "l": 3}
    assert isinstance(encoded, dict)
    assert [type(v) for v in encoded.values()] == [str, int]


# --- E-30: what cannot be encoded ------------------------------------------------


@pytest.mark.parametrize("value", [{1, 2}, frozenset({1}), [{"a": {3}}]])
def test_sets_are_rejected(value: Any) -> None:
    with pytest.raises(TypeError, match="set"):
        dumps(value)


@pytest.mark.parametrize("key", [1, None, (1, 2), b"k"])
def test_non_str_dict_keys_are_rejected(key: Any) -> None:
    with pytest.raises(TypeError, match="keys must be str"):
        to_json_value({key: 1})


def test_unknown_types_are_rejected_naming_the_type() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        to_json_value({"a": [Opaque()]})
    with pytest.raises(TypeError, match="complex"):
        dumps(1j)


# --- E-1: recognition is exact on key sets -----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"$date": 1, "x": 2}',
        '{"$binary": "", "x": 2}',
        '{"$InfNaN": 1, "x": 2}',
        '{"$escape": {}, "x": 2}',
        '{"$type": "x"}',
        '{"$value": 1}',
        '{"$type": "x", "$value": 1, "y": 2}',
        '{"$regexp": "a"}',
        '{"$flags": "g"}',
        '{"$date": 1, "$binary": ""}',
    ],
)
def test_objects_with_other_key_sets_decode_as_plain_dicts(text: str) -> None:
    assert loads(text) == json.loads(text)


# --- E-10 / E-11: escaping ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"$date": 1},
        {"$type": "x", "$value": 1},
        {"$escape": 1},
        {"$binary": "AA=="},
        {"$InfNaN": 1},
        {"$regexp": "a", "$flags": "g"},
        {"$value": 1, "$type": "x"},
    ],
)
def test_dict_shaped_like_a_special_type_is_escaped(value: dict[str, Any]) -> None:
    # E-10, E-31
    assert to_json_value(value) == {"$escape": value}
    assert round_trip(value) == value


def test_dict_with_date_key_and_another_key_is_not_escaped() -> None:
    # E-31: {"$date":1,"b":2} is not special, so it is sent as is
    assert dumps({"$date": 1, "b": 2}) == '{"$date":1,"b":2}'


def test_dict_with_one_key_of_a_two_key_recogniser_is_not_escaped() -> None:
    assert to_json_value({"$type": "x"}) == {"$type": "x"}


def test_escaped_values_are_still_ejson_encoded() -> None:
    # E-10 example: {"$date": <datetime>} -> {"$escape":{"$date":{"$date":32491}}}
    value = {"$date": dt.datetime(1970, 1, 1, 0, 0, 32, 491000, tzinfo=UTC)}
    assert dumps(value) == '{"$escape":{"$date":{"$date":32491}}}'
    assert round_trip(value) == value


def test_escaping_applies_to_one_level_only() -> None:
    # E-10: an escape-shaped dict inside an escaped dict is escaped again on its own
    value = {"$escape": {"$date": 1}}
    assert to_json_value(value) == {"$escape": {"$escape": {"$escape": {"$date": 1}}}}
    assert round_trip(value) == value


def test_escape_decoding_keeps_keys_and_decodes_values() -> None:
    # E-11
    assert loads('{"$escape": {"$date": {"$date": 0}, "$binary": "x"}}') == {
        "$date": dt.datetime(1970, 1, 1, tzinfo=UTC),
        "$binary": "x",
    }


# --- E-3 / E-31: nesting ----------------------------------------------------------------


def test_types_nested_in_arrays_inside_fields_params_and_result_round_trip() -> None:
    when = dt.datetime(2022, 2, 2, 2, 2, 2, 2000, tzinfo=UTC)
    fields = {"events": [{"at": when, "blob": b"\x00"}, [math.inf, {"$date": 5}]]}
    params = [[when, [b"xyz"]], {"deep": [[[-math.inf]]]}]
    result = {"ok": [{"$type": "t", "$value": [when]}]}
    wire = json.loads(dumps({"fields": fields, "params": params, "result": result}))
    assert wire["fields"]["events"][0] == {"at": {"$date": 1643767322002}, "blob": {"$binary": "AA=="}}
    assert wire["fields"]["events"][1] == [{"$InfNaN": 1}, {"$escape": {"$date": 5}}]
    assert wire["params"][0] == [{"$date": 1643767322002}, [{"$binary": "eHl6"}]]
    assert wire["params"][1] == {"deep": [[[{"$InfNaN": -1}]]]}
    assert wire["result"] == {"ok": [{"$escape": {"$type": "t", "$value": [{"$date": 1643767322002}]}}]}
    decoded = from_json_value(wire)
    assert decoded["fields"] == fields
    assert decoded["params"][0] == params[0]
    assert decoded["result"] == result
    assert equals(decoded, {"fields": fields, "params": params, "result": result})


# --- decode errors (E-2) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"$binary": "not base64!"}',
        '{"$binary": "YQ"}',
        '{"$binary": "YW\\nJj"}',
        '{"$binary": "YQ==!"}',
        '{"$binary": 12}',
        '{"$date": "2020-01-01"}',
        '{"$date": true}',
        '{"$date": null}',
        '{"$date": 1e300}',
        '{"$InfNaN": "1"}',
        '{"$escape": 1}',
        '{"$regexp": 1, "$flags": ""}',
        '{"$type": 1, "$value": 1}',
        '[1, {"x": {"$type": "unknown", "$value": null}}]',
    ],
)
def test_invalid_ejson_raises_ejson_decode_error(text: str) -> None:
    with pytest.raises(EJSONDecodeError):
        loads(text)


def test_invalid_json_raises_json_decode_error_not_ejson_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError) as info:
        loads('{"a": ')
    assert not isinstance(info.value, EJSONDecodeError)
    assert issubclass(EJSONDecodeError, ValueError)
    assert not issubclass(EJSONDecodeError, json.JSONDecodeError)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_nan_and_infinity_literals_are_not_json(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads(text)


def test_loads_accepts_utf8_bytes() -> None:
    assert loads('{"k": "☃", "d": {"$date": 0}}'.encode()) == {
        "k": "☃",
        "d": dt.datetime(1970, 1, 1, tzinfo=UTC),
    }


# --- dumps and canonical form (E-21) ---------------------------------------------------


def test_dumps_is_compact_valid_json_keeping_non_ascii() -> None:
    text = dumps({"a": [1, "é☃\U0001f600"], "b": None})
    assert text == '{"a":[1,"é☃\U0001f600"],"b":null}'
    assert json.loads(text) == {"a": [1, "é☃\U0001f600"], "b": None}


def test_canonical_form_sorts_keys_at_every_depth() -> None:
    value = {"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": {"$escape": 1}}
    assert dumps(value, canonical=True) == ('{"a":{"$escape":{"$escape":1}},"b":{"a":[{"x":3,"y":2}],"z":1}}')


def test_canonical_form_prints_numbers_like_javascript() -> None:
    value = [1.0, -0.0, 1e20, 1e21, 1.5e300, 1e-6, 1e-7, 0.1, 123.456, 2**53 - 1, 2.5]
    assert dumps(value, canonical=True) == (
        "[1,0,100000000000000000000,1e+21,1.5e+300,0.000001,1e-7,0.1,123.456,9007199254740991,2.5]"
    )


def test_canonical_form_sorts_keys_by_utf16_code_units_like_javascript() -> None:
    # E-21: U+FFFF sorts after an astral character in JS, before it by code point
    assert dumps({"\uffff": 1, "\U0001f600": 2, "a": 3}, canonical=True) == (
        '{"a":3,"\U0001f600":2,"\uffff":1}'
    )


def test_canonical_form_encodes_special_types() -> None:
    value = {"when": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), "n": math.nan}
    assert dumps(value, canonical=True) == '{"n":{"$InfNaN":0},"when":{"$date":1000}}'


# --- E-22: equality -------------------------------------------------------------------------


def test_equals_ignores_key_order() -> None:
    assert equals({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"d": 3, "c": 2}, "a": 1})


def test_equals_treats_int_and_float_alike_but_not_bool() -> None:
    assert equals(1, 1.0)
    assert equals([0], [0.0])
    assert not equals(True, 1)
    assert not equals([False], [0])


def test_equals_treats_nan_as_equal_to_nan() -> None:
    assert equals({"x": math.nan}, {"x": math.nan})
    assert not equals(math.nan, 0.0)


def test_equals_compares_bytes_by_value_and_datetimes_by_millisecond() -> None:
    assert equals(b"abc", bytearray(b"abc"))
    assert not equals(b"abc", b"abd")
    a = dt.datetime(2020, 1, 1, 12, 0, 0, 1500, tzinfo=UTC)
    b = dt.datetime(2020, 1, 1, 13, 0, 0, 1999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert equals(a, b)
    assert not equals(a, a + dt.timedelta(milliseconds=1))


def test_equals_detects_differences() -> None:
    assert not equals({"a": 1}, {"a": 1, "b": 2})
    assert not equals([1, 2], [2, 1])
    assert not equals("1", 1)
    assert not equals(None, {})
    assert not equals({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]})


def test_dumps_escapes_lone_surrogates_so_the_text_is_valid_utf8() -> None:
    value = {"\ud800k": ["a\udfffé"]}
    for canonical in (False, True):
        text = dumps(value, canonical=canonical)
        assert text == '{"\\ud800k":["a\\udfffé"]}'
        text.encode("utf-8")  # would raise UnicodeEncodeError on a raw surrogate
        assert loads(text) == value
