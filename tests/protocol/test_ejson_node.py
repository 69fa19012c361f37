"""Cross-check dddp.protocol.ejson against Meteor's EJSON (npm ``ejson``) running under Node.

Each case is a Python value and the equivalent JS value built in JS. Node gets our
``dumps()`` text, ``EJSON.parse``s it, and answers with ``EJSON.stringify`` of the
parsed value, of its own JS value (plain and canonical), and ``EJSON.equals`` of the
two. Parsed values are compared, not strings, except for the canonical form (E-21).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from dddp.protocol import ejson
from dddp.protocol.ejson import RegExp, dumps, equals, loads, to_json_value
from tests.nodejs import requires_node, run_node

pytestmark = requires_node

UTC = dt.timezone.utc
TYPE_NAME = "dddp_test_point"


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def to_json_value(self) -> ejson.JSONValue:
        return {"x": self.x, "y": self.y}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


WHEN = dt.datetime(2020, 5, 17, 10, 30, 15, 123000, tzinfo=UTC)  # 1589711415123 ms

# name -> (Python value, JS expression building the equivalent value)
CASES: dict[str, tuple[Any, str]] = {
    "date": (WHEN, "new Date(1589711415123)"),
    "date_1ms": (dt.datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), "new Date(1)"),
    "date_before_epoch": (dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "new Date(-1)"),
    "binary_0": (b"", "new Uint8Array([])"),
    "binary_1": (b"a", "new Uint8Array([97])"),
    "binary_2": (b"ab", "new Uint8Array([97, 98])"),
    "binary_3": (b"abc", "new Uint8Array([97, 98, 99])"),
    "binary_all_bytes": (bytes(range(256)), "Uint8Array.from({length: 256}, (_, i) => i)"),
    "nan": (math.nan, "NaN"),
    "inf": (math.inf, "Infinity"),
    "minus_inf": (-math.inf, "-Infinity"),
    "escaped_date": ({"$date": 1}, '({"$date": 1})'),
    "escaped_custom": ({"$type": "x", "$value": 1}, '({"$type": "x", "$value": 1})'),
    "escaped_escape": ({"$escape": 1}, '({"$escape": 1})'),
    "escaped_binary": ({"$binary": "AA=="}, '({"$binary": "AA=="})'),
    "escaped_infnan": ({"$InfNaN": 1}, '({"$InfNaN": 1})'),
    "escaped_regexp": ({"$regexp": "a", "$flags": "g"}, '({"$regexp": "a", "$flags": "g"})'),
    "not_escaped": ({"$date": 1, "b": 2}, '({"$date": 1, "b": 2})'),
    "escaped_with_typed_value": (
        {"$date": dt.datetime(1970, 1, 1, 0, 0, 32, 491000, tzinfo=UTC)},
        '({"$date": new Date(32491)})',
    ),
    "escape_one_level": ({"$escape": {"$date": 1}}, '({"$escape": {"$date": 1}})'),
    "nested": (
        {
            "fields": {"events": [{"at": WHEN, "blob": b"\x00"}, [math.inf, {"$date": 5}]]},
            "params": [[WHEN, [b"xyz"]], {"deep": [[[-math.inf, math.nan]]]}],
            "result": {"ok": [{"$type": "t", "$value": [WHEN]}]},
        },
        """({
            fields: {events: [{at: new Date(1589711415123), blob: new Uint8Array([0])},
                              [Infinity, {$date: 5}]]},
            params: [[new Date(1589711415123), [new Uint8Array([120, 121, 122])]],
                     {deep: [[[-Infinity, NaN]]]}],
            result: {ok: [{$type: "t", $value: [new Date(1589711415123)]}]},
        })""",
    ),
    "unicode": (
        ["ünïcødé ☃ 😀", "\u2028\u2029", "\x00\x1f\x7f", '"\\/', ""],
        '["ünïcødé ☃ 😀", "\\u2028\\u2029", "\\x00\\x1f\\x7f", "\\"\\\\/", ""]',
    ),
    "unicode_keys": (
        {"\uffff": 1, "😀": 2, "a": 3, "B": 4, "é": 5},
        '({"\\uffff": 1, "😀": 2, a: 3, B: 4, é: 5})',
    ),
    "big_ints": (
        [2**53 - 1, -(2**53 - 1), 2**53, 2**60, -(2**64)],
        '[9007199254740991, -9007199254740991, "9007199254740992", "1152921504606846976",'
        ' "-18446744073709551616"]',
    ),
    "numbers": (
        [0, 1.0, -0.0, 1.5, 0.1, 123.456, 1e20, 1e21, 1e-6, 1e-7, 1.5e300, -2.5e-10],
        "[0, 1, -0, 1.5, 0.1, 123.456, 1e20, 1e21, 1e-6, 1e-7, 1.5e300, -2.5e-10]",
    ),
    "regexp": (RegExp("^a+b$", "gim"), "/^a+b$/gim"),
    "plain_json": (
        {"n": None, "t": True, "f": False, "e": {}, "l": [], "s": "", "tuple": (1, 2)},
        '({n: null, t: true, f: false, e: {}, l: [], s: "", tuple: [1, 2]})',
    ),
    "custom_type": ({"p": [Point(1, 2)]}, "({p: [new Point(1, 2)]})"),
}

NODE_SCRIPT = """
const EJSON = require("ejson");
class Point {
  constructor(x, y) { this.x = x; this.y = y; }
  typeName() { return "%(type_name)s"; }
  toJSONValue() { return {x: this.x, y: this.y}; }
  clone() { return new Point(this.x, this.y); }
  equals(other) { return other instanceof Point && other.x === this.x && other.y === this.y; }
}
EJSON.addType("%(type_name)s", (v) => new Point(v.x, v.y));
const CASES = {%(cases)s};
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = {};
for (const [name, text] of Object.entries(input)) {
  const parsed = EJSON.parse(text);
  const js = CASES[name];
  out[name] = {
    restringified: EJSON.stringify(parsed),
    parsed_canonical: EJSON.stringify(parsed, {canonical: true}),
    js: EJSON.stringify(js),
    js_canonical: EJSON.stringify(js, {canonical: true}),
    equal: EJSON.equals(parsed, js),
  };
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node_results() -> Iterator[dict[str, dict[str, Any]]]:
    ejson.register_type(TYPE_NAME, Point, lambda v: Point(v["x"], v["y"]))
    try:
        cases = ",\n".join(f"  {json.dumps(name)}: {js}" for name, (_, js) in CASES.items())
        script = NODE_SCRIPT % {"type_name": TYPE_NAME, "cases": cases}
        texts = {name: dumps(value) for name, (value, _) in CASES.items()}
        proc = run_node(script, stdin=json.dumps(texts))
        yield json.loads(proc.stdout)
    finally:
        ejson.unregister_type(TYPE_NAME)


@pytest.mark.parametrize("name", list(CASES))
def test_node_parses_our_text_to_its_own_equivalent_value(
    node_results: dict[str, dict[str, Any]], name: str
) -> None:
    assert node_results[name]["equal"] is True


@pytest.mark.parametrize("name", list(CASES))
def test_node_restringifies_our_text_to_the_same_value(
    node_results: dict[str, dict[str, Any]], name: str
) -> None:
    value = CASES[name][0]
    back = node_results[name]["restringified"]
    assert json.loads(back) == to_json_value(value)  # same wire form, key order aside
    assert equals(loads(back), loads(dumps(value)))


@pytest.mark.parametrize("name", list(CASES))
def test_node_encoding_of_the_js_value_decodes_to_our_value(
    node_results: dict[str, dict[str, Any]], name: str
) -> None:
    value = CASES[name][0]
    theirs = node_results[name]["js"]
    assert json.loads(theirs) == to_json_value(value)
    assert equals(loads(theirs), value)


@pytest.mark.parametrize("name", list(CASES))
def test_canonical_form_matches_node_byte_for_byte(
    node_results: dict[str, dict[str, Any]], name: str
) -> None:
    # E-21: sorted keys (UTF-16 order), compact, JS number formatting
    ours = dumps(CASES[name][0], canonical=True)
    assert ours == node_results[name]["js_canonical"]
    assert ours == node_results[name]["parsed_canonical"]


def test_round_trip_values_survive_node(node_results: dict[str, dict[str, Any]]) -> None:
    # Our decoding of Node's output gives back the Python values (tuples become lists).
    decoded = {name: loads(entry["restringified"]) for name, entry in node_results.items()}
    assert decoded["date"] == WHEN
    assert decoded["binary_all_bytes"] == bytes(range(256))
    assert decoded["escape_one_level"] == {"$escape": {"$date": 1}}
    assert decoded["regexp"] == RegExp("^a+b$", "gim")
    assert decoded["custom_type"] == {"p": [Point(1, 2)]}
    assert decoded["plain_json"]["tuple"] == [1, 2]
    assert math.isnan(decoded["nan"])
