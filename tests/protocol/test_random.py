"""Meteor's Random in Python: the ids a Meteor client's stub draws from a method's randomSeed.

The vectors are docs/ddp-protocol.md's R-5 (checked there against Meteor's own
code); the comparison with JavaScript runs Alea as Meteor's AleaRandomGenerator.js
has it, under Node, for seeds with characters outside ASCII and outside the BMP.
"""

from __future__ import annotations

import json
import random

import pytest

from dddp.protocol.random import (
    ID_LENGTH,
    UNMISTAKABLE_CHARS,
    Alea,
    RandomStreams,
    secure,
)
from tests.nodejs import requires_node, run_node


def test_alea_gives_the_reference_values() -> None:
    """R-5: Alea(["abc"])'s first three values."""
    alea = Alea("abc")
    assert [alea.fraction() for _ in range(3)] == [
        0.4795641906093806,
        0.32567206234671175,
        0.8431053028907627,
    ]


@pytest.mark.parametrize(
    ("seed", "ids"),
    [
        ("b1d5e3e2b5a0f3c1e9d7", ["RfhKD4zm32A5tTiwy", "yZCwHErjXiRhj8aXP"]),
        ("0123456789abcdef0123", ["devBuvC559TzDB3E9", "MjBCWTC6R4Tr5jJ3h"]),
    ],
)
def test_inserts_into_a_collection_draw_the_ids_the_client_stub_drew(seed: str, ids: list[str]) -> None:
    """R-2, R-5: the n-th insert into `tasks` in one invocation gets the n-th id of its stream."""
    streams = RandomStreams(seed)
    assert [streams.collection_id("tasks"), streams.collection_id("tasks")] == ids


def test_each_stream_has_its_own_sequence() -> None:
    """R-2: an insert into another collection does not disturb `tasks`'s sequence."""
    streams = RandomStreams("b1d5e3e2b5a0f3c1e9d7")
    assert streams.collection_id("tasks") == "RfhKD4zm32A5tTiwy"
    streams.collection_id("notes")
    streams.collection_id("notes")
    assert streams.collection_id("tasks") == "yZCwHErjXiRhj8aXP"


def test_hex_strings_and_child_seeds_give_the_reference_values() -> None:
    """R-1, R-4, R-5: a fresh stream's hexString(24), and the seed of a method called from a method."""
    assert RandomStreams("b1d5e3e2b5a0f3c1e9d7").stream("/collection/tasks").hex_string(24) == (
        "6aa430fc0020e7bfff82e43d"
    )
    assert RandomStreams("b1d5e3e2b5a0f3c1e9d7").child_seed("foo") == "5083c44ea243092c78b7"


def test_without_a_seed_ids_are_random_and_well_formed() -> None:
    """R-1: no randomSeed, so the server draws its own ids (from the system's random source)."""
    streams = RandomStreams(None)
    ids = {streams.collection_id("tasks") for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == ID_LENGTH and set(i) <= set(UNMISTAKABLE_CHARS) for i in ids)
    assert streams.stream("/collection/tasks") is secure
    assert all(0.0 <= secure.fraction() < 1.0 for _ in range(1000))


def test_any_string_is_a_seed() -> None:
    """R-1: the server accepts any randomSeed, not only 20 hex characters."""
    for seed in ["", "x", "é", "\U0001f600 emoji", "a" * 1000]:
        assert len(RandomStreams(seed).collection_id("tasks")) == ID_LENGTH


ALEA_JS = r"""
// Meteor's AleaRandomGenerator.js (packages/random), its Mash and Alea functions as they are.
function Mash() {
  let n = 0xefc8249d;
  return (data) => {
    data = data.toString();
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000;
    }
    return (n >>> 0) * 2.3283064365386963e-10;
  };
}
function Alea(seeds) {
  let s0 = 0, s1 = 0, s2 = 0, c = 1;
  const mash = Mash();
  s0 = mash(' '); s1 = mash(' '); s2 = mash(' ');
  for (let i = 0; i < seeds.length; i++) {
    s0 -= mash(seeds[i]); if (s0 < 0) { s0 += 1; }
    s1 -= mash(seeds[i]); if (s1 < 0) { s1 += 1; }
    s2 -= mash(seeds[i]); if (s2 < 0) { s2 += 1; }
  }
  return () => {
    const t = 2091639 * s0 + c * 2.3283064365386963e-10;
    s0 = s1; s1 = s2;
    return s2 = t - (c = t | 0);
  };
}
const UNMISTAKABLE = '23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz';
const seeds = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(seeds.map((seed) => {
  const next = Alea([seed, '/collection/tasks']);
  let id = '';
  for (let i = 0; i < 17; i++) { id += UNMISTAKABLE[Math.floor(next() * UNMISTAKABLE.length)]; }
  return [id, next(), next()];
})));
"""


@requires_node
def test_python_and_javascript_draw_the_same_for_any_seed() -> None:
    chooser = random.Random(9)
    alphabet = "0123456789abcdef" + "xyzé€\u4e2d" + "\U0001f600\U00010348"
    seeds = ["".join(chooser.choice(alphabet) for _ in range(chooser.randrange(0, 40))) for _ in range(300)]
    expected = json.loads(run_node(ALEA_JS, stdin=json.dumps(seeds)).stdout)
    for seed, (js_id, *js_values) in zip(seeds, expected, strict=True):
        generator = Alea(seed, "/collection/tasks")
        assert generator.id() == js_id, seed
        assert [generator.fraction(), generator.fraction()] == js_values, seed
