"""Unit tests for dddp.protocol.websocket: RFC 6455 framing without sockets.

Client frames are built here, independently of the module under test, and the
server's frames are read back with a decoder of our own.
"""

from __future__ import annotations

import random
import struct

import pytest

from dddp.protocol.websocket import (
    CLOSE_TOO_BIG,
    MAX_FRAGMENTS,
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    BinaryMessage,
    CloseHandshake,
    CloseRequest,
    Event,
    FrameParser,
    Ping,
    Pong,
    TextMessage,
    Violation,
    close_code_to_echo,
    close_frame,
    frame,
    text_frame,
)

MASK = b"\x37\xfa\x21\x3d"
LIMIT = 1 << 20


# --- helpers -----------------------------------------------------------------


def client_header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    mask: bytes = MASK,
    length_bits: int | None = None,
) -> bytes:
    """A client frame header (with its masking key), the length in 7, 16 or 64 bits."""
    if length_bits is None:
        length_bits = 7 if length < 126 else 16 if length < 65536 else 64
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if length_bits == 7:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length_bits == 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    return header + (mask if masked else b"")


def client_frame(
    payload: bytes,
    opcode: int = OPCODE_TEXT,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    mask: bytes = MASK,
    length_bits: int | None = None,
) -> bytes:
    """A whole client frame, masked as browsers send them (unless `masked` is false)."""
    header = client_header(
        opcode, len(payload), fin=fin, rsv=rsv, masked=masked, mask=mask, length_bits=length_bits
    )
    if masked:
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return header + payload


def text(
    message: str,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    mask: bytes = MASK,
    length_bits: int | None = None,
) -> bytes:
    """A client text frame."""
    return client_frame(
        message.encode("utf-8"),
        OPCODE_TEXT,
        fin=fin,
        rsv=rsv,
        masked=masked,
        mask=mask,
        length_bits=length_bits,
    )


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def decode_server_frame(data: bytes) -> tuple[bool, int, bytes, int]:
    """One whole unmasked server frame: (fin, opcode, payload, header size); nothing may follow."""
    first, second = data[0], data[1]
    assert not second & 0x80, "server frames are never masked"
    assert not first & 0x70, "no reserved bits"
    length, header = second & 0x7F, 2
    if length == 126:
        (length,) = struct.unpack_from("!H", data, 2)
        header = 4
    elif length == 127:
        (length,) = struct.unpack_from("!Q", data, 2)
        header = 10
    assert len(data) == header + length
    return bool(first & 0x80), first & 0x0F, data[header:], header


def parse(*chunks: bytes, limit: int = LIMIT) -> list[Event]:
    """Feed `chunks` one after the other to a fresh parser: all the events."""
    parser = FrameParser(limit)
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def violation_code(events: list[Event]) -> int:
    assert events, "expected a Violation, got no event"
    last = events[-1]
    assert isinstance(last, Violation), f"expected a Violation last, got {events!r}"
    return last.code


# --- whole messages ----------------------------------------------------------


def test_a_text_message_in_one_frame() -> None:
    assert parse(text('{"msg":"connect"}')) == [TextMessage('{"msg":"connect"}')]


def test_an_empty_text_message() -> None:
    assert parse(text("")) == [TextMessage("")]


def test_a_message_fed_one_byte_at_a_time_is_assembled() -> None:
    data = text("héllo, wörld ✓" * 20)  # 16-bit length, multi-byte characters
    parser = FrameParser(LIMIT)
    events: list[Event] = []
    for i in range(len(data)):
        new = parser.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert new == [], f"event before the last byte (byte {i})"
        events.extend(new)
    assert events == [TextMessage("héllo, wörld ✓" * 20)]


@pytest.mark.parametrize("cut", range(1, 12))
def test_a_message_split_anywhere_in_two_feeds_is_assembled(cut: int) -> None:
    data = text("ping me") + text("and me")
    assert parse(data[:cut], data[cut:]) == [TextMessage("ping me"), TextMessage("and me")]


def test_several_frames_in_one_feed_give_their_events_in_order() -> None:
    data = (
        text("one")
        + client_frame(b"\x00\x01\x02", OPCODE_BINARY)
        + client_frame(b"are you there", OPCODE_PING)
        + client_frame(b"yes", OPCODE_PONG)
        + text("two")
    )
    assert parse(data) == [
        TextMessage("one"),
        BinaryMessage(3),
        Ping(b"are you there"),
        Pong(b"yes"),
        TextMessage("two"),
    ]


def test_an_empty_feed_gives_nothing() -> None:
    parser = FrameParser(LIMIT)
    assert parser.feed(b"") == []
    assert parser.feed(text("x")) == [TextMessage("x")]


def test_a_200_byte_message_uses_the_16_bit_length() -> None:
    data = text("a" * 200)
    assert data[1] & 0x7F == 126
    assert parse(data) == [TextMessage("a" * 200)]


def test_a_70000_byte_message_uses_the_64_bit_length() -> None:
    data = text("b" * 70_000)
    assert data[1] & 0x7F == 127
    assert parse(data) == [TextMessage("b" * 70_000)]


def test_a_70000_byte_message_fed_in_small_chunks() -> None:
    data = text("c" * 70_000)
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert parse(*chunks) == [TextMessage("c" * 70_000)]


@pytest.mark.parametrize("seed", range(20))
def test_frames_cut_at_random_places_give_the_same_events_as_whole(seed: int) -> None:
    """A frame's payload is unmasked piece by piece as reads bring it: every cut, any mask."""
    rng = random.Random(seed)
    messages = ["".join(rng.choice("ab✓é{}") for _ in range(rng.choice([0, 3, 125, 126, 4000, 70_000])))
                for _ in range(6)]  # fmt: skip
    data = b"".join(text(message, mask=rng.randbytes(4)) for message in messages)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert parse(*chunks) == [TextMessage(message) for message in messages]


def test_a_closed_parser_drops_what_it_held_and_parses_nothing_more() -> None:
    parser = FrameParser(LIMIT)
    data = text("x" * 70_000)
    assert parser.feed(data[:40_000]) == []
    parser.close()
    assert parser._partial is None
    assert parser.feed(data[40_000:]) == [] and parser.feed(text("next")) == []


def test_longer_length_encodings_than_needed_are_accepted() -> None:
    assert parse(text("short", length_bits=16), text("short", length_bits=64)) == [
        TextMessage("short"),
        TextMessage("short"),
    ]


@pytest.mark.parametrize("mask", [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x80\x7f\xfe"])
def test_any_mask_is_undone(mask: bytes) -> None:
    assert parse(text("masked ✓", mask=mask)) == [TextMessage("masked ✓")]


def test_a_binary_message_gives_its_size() -> None:
    assert parse(client_frame(bytes(range(256)) * 3, OPCODE_BINARY)) == [BinaryMessage(768)]


def test_an_empty_binary_message() -> None:
    assert parse(client_frame(b"", OPCODE_BINARY)) == [BinaryMessage(0)]


def test_ping_and_pong_carry_their_payload() -> None:
    assert parse(client_frame(b"\x00hi\xff", OPCODE_PING), client_frame(b"", OPCODE_PONG)) == [
        Ping(b"\x00hi\xff"),
        Pong(b""),
    ]


def test_a_125_byte_ping_is_accepted() -> None:
    assert parse(client_frame(b"p" * 125, OPCODE_PING)) == [Ping(b"p" * 125)]


# --- fragmentation -----------------------------------------------------------


def test_fragmented_text_is_joined_from_continuation_frames() -> None:
    data = (
        text("Hel", fin=False)
        + client_frame(b"lo, ", OPCODE_CONTINUATION, fin=False)
        + client_frame(b"world", OPCODE_CONTINUATION)
    )
    assert parse(data) == [TextMessage("Hello, world")]


def test_a_fragment_gives_no_event_until_the_last_one() -> None:
    parser = FrameParser(LIMIT)
    assert parser.feed(text("a", fin=False)) == []
    assert parser.feed(client_frame(b"b", OPCODE_CONTINUATION, fin=False)) == []
    assert parser.feed(client_frame(b"c", OPCODE_CONTINUATION)) == [TextMessage("abc")]


def test_empty_fragments_are_allowed() -> None:
    data = (
        text("", fin=False)
        + client_frame(b"", OPCODE_CONTINUATION, fin=False)
        + client_frame(b"x", OPCODE_CONTINUATION, fin=False)
        + client_frame(b"", OPCODE_CONTINUATION)
    )
    assert parse(data) == [TextMessage("x")]


def test_a_message_may_come_in_up_to_max_fragments() -> None:
    data = text("a", fin=False) + client_frame(b"", OPCODE_CONTINUATION, fin=False) * (MAX_FRAGMENTS - 2)
    assert parse(data + client_frame(b"b", OPCODE_CONTINUATION)) == [TextMessage("ab")]


def test_more_fragments_than_that_close_with_1009_however_small() -> None:
    """Issue 9, attack 6: empty fragments added nothing to the size, so they were unbounded."""
    parser = FrameParser(LIMIT)
    data = text("a", fin=False) + client_frame(b"", OPCODE_CONTINUATION, fin=False) * MAX_FRAGMENTS
    events = parser.feed(data + client_frame(b"", OPCODE_CONTINUATION, fin=False))
    assert events == [Violation(CLOSE_TOO_BIG, f"message in too many fragments: over {MAX_FRAGMENTS}")]


def test_control_frames_may_interleave_with_fragments() -> None:
    data = (
        text("frag", fin=False)
        + client_frame(b"keepalive", OPCODE_PING)
        + client_frame(b"ment", OPCODE_CONTINUATION, fin=False)
        + client_frame(b"", OPCODE_PONG)
        + client_frame(b"ed", OPCODE_CONTINUATION)
    )
    assert parse(data) == [Ping(b"keepalive"), Pong(b""), TextMessage("fragmented")]


def test_a_close_may_interleave_with_fragments() -> None:
    data = text("never", fin=False) + client_frame(close_payload(1000), OPCODE_CLOSE)
    assert parse(data) == [CloseRequest(1000, "")]


def test_fragmented_binary_gives_the_total_size() -> None:
    data = (
        client_frame(b"\x00" * 10, OPCODE_BINARY, fin=False)
        + client_frame(b"\x01" * 20, OPCODE_CONTINUATION, fin=False)
        + client_frame(b"\x02" * 30, OPCODE_CONTINUATION)
    )
    assert parse(data) == [BinaryMessage(60)]


def test_a_message_after_a_fragmented_one_starts_afresh() -> None:
    data = (
        client_frame(b"\x00" * 4, OPCODE_BINARY, fin=False)
        + client_frame(b"\x00" * 4, OPCODE_CONTINUATION)
        + text("next")
    )
    assert parse(data) == [BinaryMessage(8), TextMessage("next")]


def test_a_utf8_character_cut_between_fragments_still_decodes() -> None:
    encoded = "€😀".encode()  # 3 + 4 bytes
    for cut in range(1, len(encoded)):
        data = client_frame(encoded[:cut], OPCODE_TEXT, fin=False) + client_frame(
            encoded[cut:], OPCODE_CONTINUATION
        )
        assert parse(data) == [TextMessage("€😀")], f"cut at byte {cut}"


def test_a_utf8_character_cut_between_feeds_still_decodes() -> None:
    data = text("😀")
    assert parse(data[:7], data[7:]) == [TextMessage("😀")]


# --- protocol violations -----------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"abc\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"],
    ids=["ff", "truncated", "bad-continuation", "surrogate", "above-10ffff", "overlong"],
)
def test_invalid_utf8_text_is_a_1007_violation(payload: bytes) -> None:
    assert violation_code(parse(client_frame(payload, OPCODE_TEXT))) == 1007


def test_invalid_utf8_across_fragments_is_a_1007_violation() -> None:
    data = client_frame(b"ok \xe2\x82", OPCODE_TEXT, fin=False) + client_frame(b"x", OPCODE_CONTINUATION)
    assert violation_code(parse(data)) == 1007


def test_invalid_utf8_is_allowed_in_binary_messages() -> None:
    assert parse(client_frame(b"\xff\xfe", OPCODE_BINARY)) == [BinaryMessage(2)]


def test_unmasked_client_frame_is_a_protocol_violation() -> None:
    assert violation_code(parse(client_frame(b"hello", masked=False))) == 1002


def test_unmasked_frame_is_refused_from_its_first_two_bytes() -> None:
    data = client_frame(b"hello", masked=False)
    assert violation_code(parse(data[:2])) == 1002


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits_are_a_protocol_violation(rsv: int) -> None:
    assert violation_code(parse(text("x", rsv=rsv))) == 1002


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xF])
def test_unknown_opcode_is_a_protocol_violation(opcode: int) -> None:
    assert violation_code(parse(client_frame(b"x", opcode))) == 1002


def test_continuation_without_a_message_is_a_protocol_violation() -> None:
    assert violation_code(parse(client_frame(b"x", OPCODE_CONTINUATION))) == 1002


def test_continuation_after_a_finished_message_is_a_protocol_violation() -> None:
    data = text("done") + client_frame(b"more", OPCODE_CONTINUATION)
    events = parse(data)
    assert events[0] == TextMessage("done")
    assert violation_code(events) == 1002


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_new_message_inside_a_fragmented_one_is_a_protocol_violation(opcode: int) -> None:
    data = text("first", fin=False) + client_frame(b"second", opcode)
    assert violation_code(parse(data)) == 1002


@pytest.mark.parametrize("opcode", [OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
def test_fragmented_control_frame_is_a_protocol_violation(opcode: int) -> None:
    payload = close_payload(1000) if opcode == OPCODE_CLOSE else b"x"
    assert violation_code(parse(client_frame(payload, opcode, fin=False))) == 1002


@pytest.mark.parametrize("opcode", [OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
def test_control_frame_over_125_bytes_is_a_protocol_violation(opcode: int) -> None:
    payload = close_payload(1000, b"r" * 124) if opcode == OPCODE_CLOSE else b"x" * 126
    assert len(payload) == 126
    assert violation_code(parse(client_frame(payload, opcode))) == 1002


def test_oversized_control_frame_is_refused_from_its_header() -> None:
    assert violation_code(parse(client_header(OPCODE_PING, 126))) == 1002


# --- message size limit ------------------------------------------------------


def test_message_of_exactly_max_message_size_is_accepted() -> None:
    assert parse(text("m" * 1000), limit=1000) == [TextMessage("m" * 1000)]


def test_message_one_byte_over_max_message_size_is_a_1009_violation() -> None:
    assert violation_code(parse(text("m" * 1001), limit=1000)) == 1009


@pytest.mark.parametrize("length", [1001, 70_000, 1 << 40, (1 << 63) - 1, (1 << 64) - 1])
def test_too_big_message_is_refused_from_the_header_alone(length: int) -> None:
    """Only the header is fed: the Violation comes without waiting for (or buffering) the payload."""
    header = client_header(OPCODE_TEXT, length)
    assert violation_code(parse(header, limit=1000)) == 1009


def test_too_big_64_bit_length_is_refused_as_soon_as_the_length_is_read() -> None:
    header = client_header(OPCODE_BINARY, 1 << 32)  # 2 + 8 bytes, then the mask
    parser = FrameParser(1000)
    assert parser.feed(header[:9]) == []
    assert violation_code(parser.feed(header[9:10])) == 1009


def test_too_big_16_bit_length_is_refused_from_the_header_alone() -> None:
    assert violation_code(parse(client_header(OPCODE_TEXT, 300)[:4], limit=200)) == 1009


def test_too_big_7_bit_length_is_refused_from_the_header_alone() -> None:
    assert violation_code(parse(client_header(OPCODE_TEXT, 101)[:2], limit=100)) == 1009


def test_fragments_whose_total_exceeds_the_limit_are_a_1009_violation() -> None:
    parser = FrameParser(1000)
    assert parser.feed(text("a" * 600, fin=False)) == []
    # Only the header of the second fragment: refused before its payload comes.
    assert violation_code(parser.feed(client_header(OPCODE_CONTINUATION, 401, fin=False))) == 1009


def test_final_fragment_over_the_limit_is_a_1009_violation() -> None:
    data = text("a" * 600, fin=False) + client_frame(b"b" * 401, OPCODE_CONTINUATION)
    assert violation_code(parse(data, limit=1000)) == 1009


def test_fragments_totalling_exactly_the_limit_are_accepted() -> None:
    data = (
        text("a" * 400, fin=False)
        + client_frame(b"b" * 400, OPCODE_CONTINUATION, fin=False)
        + client_frame(b"c" * 200, OPCODE_CONTINUATION)
    )
    assert parse(data, limit=1000) == [TextMessage("a" * 400 + "b" * 400 + "c" * 200)]


def test_the_limit_applies_per_message_not_per_connection() -> None:
    data = text("a" * 1000) + text("b" * 1000) + text("c" * 1000)
    assert parse(data, limit=1000) == [
        TextMessage("a" * 1000),
        TextMessage("b" * 1000),
        TextMessage("c" * 1000),
    ]


def test_control_frames_do_not_count_toward_the_limit() -> None:
    data = (
        text("a" * 95, fin=False)
        + client_frame(b"p" * 100, OPCODE_PING)
        + client_frame(b"b" * 5, OPCODE_CONTINUATION)
    )
    assert parse(data, limit=100) == [Ping(b"p" * 100), TextMessage("a" * 95 + "b" * 5)]


# --- close -------------------------------------------------------------------


def test_close_frame_with_code_and_reason() -> None:
    data = client_frame(close_payload(1001, "au revoir ✓".encode()), OPCODE_CLOSE)
    assert parse(data) == [CloseRequest(1001, "au revoir ✓")]


def test_close_frame_with_code_only() -> None:
    assert parse(client_frame(close_payload(4000), OPCODE_CLOSE)) == [CloseRequest(4000, "")]


def test_empty_close_payload_means_no_status_1005() -> None:
    assert parse(client_frame(b"", OPCODE_CLOSE)) == [CloseRequest(1005, "")]


def test_close_with_a_one_byte_payload_is_a_protocol_violation() -> None:
    assert violation_code(parse(client_frame(b"\x03", OPCODE_CLOSE))) == 1002


def test_close_with_invalid_utf8_reason_is_a_1007_violation() -> None:
    data = client_frame(close_payload(1000, b"bad \xff reason"), OPCODE_CLOSE)
    assert violation_code(parse(data)) == 1007


def test_close_fed_one_byte_at_a_time() -> None:
    data = client_frame(close_payload(1000, b"bye"), OPCODE_CLOSE)
    assert parse(*(data[i : i + 1] for i in range(len(data)))) == [CloseRequest(1000, "bye")]


# --- nothing after a close or a violation ------------------------------------


def test_events_before_a_violation_in_the_same_feed_are_returned_in_order() -> None:
    data = (
        text("first")
        + client_frame(b"p", OPCODE_PING)
        + client_frame(b"\x00\x00", OPCODE_BINARY)
        + client_frame(b"unmasked", masked=False)
        + text("never")
    )
    events = parse(data)
    assert events[:-1] == [TextMessage("first"), Ping(b"p"), BinaryMessage(2)]
    assert violation_code(events) == 1002


def test_nothing_follows_a_violation() -> None:
    parser = FrameParser(LIMIT)
    events = parser.feed(text("ok") + text("x", rsv=1) + text("lost"))
    assert events[0] == TextMessage("ok")
    assert violation_code(events) == 1002
    assert len(events) == 2
    assert parser.feed(text("later")) == []
    assert parser.feed(client_frame(b"", OPCODE_CLOSE)) == []


def test_nothing_follows_a_violation_from_a_partial_header() -> None:
    parser = FrameParser(100)
    assert violation_code(parser.feed(client_header(OPCODE_TEXT, 101))) == 1009
    assert parser.feed(b"x" * 101 + text("after")) == []


def test_nothing_follows_a_close_in_the_same_feed() -> None:
    data = text("before") + client_frame(close_payload(1000), OPCODE_CLOSE) + text("after")
    assert parse(data) == [TextMessage("before"), CloseRequest(1000, "")]


def test_nothing_follows_a_close_in_later_feeds() -> None:
    parser = FrameParser(LIMIT)
    assert parser.feed(client_frame(b"", OPCODE_CLOSE)) == [CloseRequest(1005, "")]
    assert parser.feed(text("after")) == []
    # Not even a violation: the parser ignores the input entirely.
    assert parser.feed(client_frame(b"garbage", masked=False)) == []


def test_garbage_after_a_close_in_the_same_feed_is_ignored() -> None:
    data = client_frame(close_payload(1000), OPCODE_CLOSE) + b"\xff\xff\xff"
    assert parse(data) == [CloseRequest(1000, "")]


# --- round trips -------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_text_round_trips_through_the_parser(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = 'abcxyz {}[]":,é€😀\u0000\u07ff\uffff'
    messages = [
        "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 125, 126, 300, 70_000])))
        for _ in range(6)
    ]
    data = b""
    for message in messages:
        encoded = message.encode("utf-8")
        mask = bytes(rng.randrange(256) for _ in range(4))
        # Fragment at random byte offsets, possibly inside a character.
        cuts = sorted(rng.sample(range(len(encoded) + 1), k=min(3, len(encoded) + 1)))
        pieces = [encoded[a:b] for a, b in zip([0, *cuts], [*cuts, len(encoded)], strict=True)]
        for i, piece in enumerate(pieces):
            opcode = OPCODE_TEXT if i == 0 else OPCODE_CONTINUATION
            data += client_frame(piece, opcode, fin=i == len(pieces) - 1, mask=mask)
    # Feed in random-sized chunks.
    parser = FrameParser(LIMIT)
    events: list[Event] = []
    offset = 0
    while offset < len(data):
        size = rng.randint(1, 5000)
        events.extend(parser.feed(data[offset : offset + size]))
        offset += size
    assert events == [TextMessage(message) for message in messages]


@pytest.mark.parametrize("seed", range(4))
def test_random_binary_round_trips_through_the_parser(seed: int) -> None:
    rng = random.Random(1000 + seed)
    sizes = [rng.choice([0, 1, 3, 4, 5, 125, 126, 65535, 65536, 100_000]) for _ in range(5)]
    data = b"".join(client_frame(rng.randbytes(size), OPCODE_BINARY, mask=rng.randbytes(4)) for size in sizes)
    assert parse(data) == [BinaryMessage(size) for size in sizes]


@pytest.mark.parametrize("seed", range(4))
def test_random_ping_payloads_come_back_unmasked(seed: int) -> None:
    rng = random.Random(2000 + seed)
    payloads = [rng.randbytes(rng.randint(0, 125)) for _ in range(20)]
    data = b"".join(client_frame(p, OPCODE_PING, mask=rng.randbytes(4)) for p in payloads)
    assert parse(data) == [Ping(p) for p in payloads]


# --- server frames -----------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header_size"),
    [(0, 2), (1, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70_000, 10)],
)
def test_frame_uses_the_smallest_length_encoding(size: int, header_size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    fin, opcode, decoded, header = decode_server_frame(frame(OPCODE_BINARY, payload))
    assert (fin, opcode, decoded, header) == (True, OPCODE_BINARY, payload, header_size)


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY, OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
def test_frame_is_final_unmasked_with_its_opcode(opcode: int) -> None:
    data = frame(opcode, b"abc")
    assert data[:2] == bytes([0x80 | opcode, 3])
    assert decode_server_frame(data) == (True, opcode, b"abc", 2)


def test_text_frame_encodes_utf8() -> None:
    assert decode_server_frame(text_frame('{"msg":"ping","id":"é😀"}')) == (
        True,
        OPCODE_TEXT,
        '{"msg":"ping","id":"é😀"}'.encode(),
        2,
    )


def test_close_frame_carries_code_and_reason() -> None:
    assert decode_server_frame(close_frame(1009, "too big")) == (
        True,
        OPCODE_CLOSE,
        b"\x03\xf1too big",
        2,
    )


def test_close_frame_without_reason() -> None:
    assert decode_server_frame(close_frame(1000)) == (True, OPCODE_CLOSE, b"\x03\xe8", 2)


def test_close_frame_keeps_a_reason_that_just_fits() -> None:
    _, _, payload, _ = decode_server_frame(close_frame(1000, "r" * 123))
    assert payload == b"\x03\xe8" + b"r" * 123


def test_close_frame_cuts_a_long_ascii_reason_to_125_bytes() -> None:
    _, _, payload, header = decode_server_frame(close_frame(1008, "x" * 500))
    assert header == 2
    assert payload == b"\x03\xf0" + b"x" * 123


@pytest.mark.parametrize("prefix", range(4))
def test_close_frame_does_not_split_a_utf8_character(prefix: int) -> None:
    reason = "a" * prefix + "😀" * 40  # 4-byte characters straddle byte 123 at every offset
    _, opcode, payload, header = decode_server_frame(close_frame(1001, reason))
    assert opcode == OPCODE_CLOSE and header == 2
    assert len(payload) <= 125
    assert len(payload) > 125 - 4, "cut no more than the partial character"
    (code,) = struct.unpack_from("!H", payload)
    assert code == 1001
    kept = payload[2:].decode("utf-8")  # strict: no partial character
    assert reason.startswith(kept)


def test_close_frame_round_trips_through_the_parser_once_masked() -> None:
    _, _, payload, _ = decode_server_frame(close_frame(4001, "é" * 100))
    assert parse(client_frame(payload, OPCODE_CLOSE)) == [CloseRequest(4001, "é" * 61)]


@pytest.mark.parametrize(
    ("code", "echo"),
    [
        (1000, 1000),
        (1001, 1001),
        (1002, 1002),
        (3000, 3000),
        (4999, 4999),
        (1005, 1000),
        (1006, 1000),
        (1015, 1000),
        (999, 1000),
        (0, 1000),
        (5000, 1000),
        (65535, 1000),
    ],
)
def test_close_code_to_echo(code: int, echo: int) -> None:
    assert close_code_to_echo(code) == echo


# --- the closing handshake (RFC 6455 7.1.2 to 7.1.4) ----------------------------------------


def test_when_the_server_closes_first_the_clients_answer_ends_the_connection() -> None:
    handshake = CloseHandshake()
    assert handshake.close(1001, "server shutting down") == close_frame(1001, "server shutting down")
    assert handshake.closing and not handshake.done
    assert handshake.receive(CloseRequest(1001, "")) is None  # the answer: nothing more to send
    assert handshake.done


def test_when_the_client_closes_first_its_code_is_echoed_at_once() -> None:
    handshake = CloseHandshake()
    assert handshake.receive(CloseRequest(4000, "bye")) == close_frame(4000, "closed by the client")
    assert handshake.done
    assert handshake.close(1000, "too late") is None  # our frame is already sent


@pytest.mark.parametrize("code", [1005, 1006, 1015, 999, 5000])
def test_a_close_code_that_may_not_be_sent_is_answered_with_1000(code: int) -> None:
    assert CloseHandshake().receive(CloseRequest(code, "")) == close_frame(1000, "closed by the client")


def test_each_side_sends_one_close_frame() -> None:
    handshake = CloseHandshake()
    assert handshake.close(1000, "first") is not None
    assert handshake.close(1001, "second") is None
    assert handshake.receive(CloseRequest(1000, "")) is None
    assert handshake.receive(CloseRequest(1000, "again")) is None
    assert handshake.done


def test_an_open_connection_is_not_closing() -> None:
    handshake = CloseHandshake()
    assert not handshake.closing and not handshake.done
