"""The SockJS websocket frames a batch is sent in, made once for every session that sends it."""

from __future__ import annotations

import json

from dddp.server.sockjs import sockjs_frame_of


def payload(frame: bytes) -> list[str]:
    """The texts of one unmasked server text frame carrying `a[...]`."""
    assert frame[0] == 0x81  # FIN, text
    length, start = frame[1], 2
    if length == 126:
        length, start = int.from_bytes(frame[2:4], "big"), 4
    text = frame[start:].decode()
    assert len(frame) - start == length and text.startswith("a")
    return json.loads(text[1:])


def test_a_batch_is_one_frame_of_its_texts_in_order() -> None:
    texts = ['{"msg":"added"}', '{"msg":"ready"}']
    assert payload(sockjs_frame_of(texts)) == texts
    assert payload(sockjs_frame_of(texts[::-1])) == texts[::-1]


def test_the_same_texts_give_the_same_frame_object() -> None:
    texts = [json.dumps({"msg": "changed", "n": n}) for n in range(3)]
    assert sockjs_frame_of(texts) is sockjs_frame_of(list(texts))


def test_equal_texts_that_are_other_objects_get_a_frame_of_their_own_content() -> None:
    first = [json.dumps({"n": 1}), json.dumps({"n": 2})]
    frame = sockjs_frame_of(first)
    second = [json.dumps({"n": 1}), json.dumps({"n": 3})]
    assert payload(sockjs_frame_of(second)) == second
    assert payload(frame) == first
