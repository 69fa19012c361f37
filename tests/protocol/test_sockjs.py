"""The SockJS wire format (section 3): paths, frames, payloads, documents, headers."""

from __future__ import annotations

import json
import re
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote

import pytest

from dddp.protocol import sockjs
from dddp.protocol.sockjs import Endpoint, RequestError

# --- paths (S-15, table 3.2) ----------------------------------------------------


@pytest.mark.parametrize("path", ["", "/"])
def test_base_path_and_its_slash_are_the_greeting(path: str) -> None:
    assert sockjs.parse_path(path) == Endpoint("greeting")


@pytest.mark.parametrize("path", ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"])
def test_other_short_paths_are_not_found(path: str) -> None:
    """BaseUrlGreeting.test_notFound."""
    assert sockjs.parse_path(path) is None


@pytest.mark.parametrize("path", ["/info", "/info/"])
def test_info_path(path: str) -> None:
    assert sockjs.parse_path(path) == Endpoint("info")


@pytest.mark.parametrize("path", ["/websocket", "/websocket/"])
def test_bare_websocket_path_is_the_raw_websocket(path: str) -> None:
    """S-4: Meteor rewrites both "/websocket" and "/websocket/"."""
    assert sockjs.parse_path(path) == Endpoint("raw_websocket")


@pytest.mark.parametrize(
    "path",
    [
        "/iframe.html",
        "/iframe-a.html",
        "/iframe-.html",
        "/iframe-0.1.2.html",
        "/iframe-0.1.2abc-dirty.2144.html",
    ],
)
def test_iframe_page_and_its_versioned_names(path: str) -> None:
    """IframePage.test_simpleUrl and test_versionedUrl."""
    assert sockjs.parse_path(path) == Endpoint("iframe")


@pytest.mark.parametrize(
    "path",
    [
        "/iframe.htm",
        "/iframe",
        "/IFRAME.HTML",
        "/IFRAME",
        "/iframe.HTML",
        "/iframe.xml",
        "/iframe-/.html",
        "/iframeXhtml",
    ],
)
def test_malformed_iframe_names_are_not_found(path: str) -> None:
    """IframePage.test_invalidUrl, plus the unescaped dot of sockjs-node's pattern."""
    assert sockjs.parse_path(path) is None


@pytest.mark.parametrize("transport", sorted(sockjs.TRANSPORTS))
def test_session_path_names_server_session_and_transport(transport: str) -> None:
    endpoint = sockjs.parse_path(f"/000/abc_d-e%20/{transport}")
    assert endpoint == Endpoint("session", "000", "abc_d-e%20", transport)  # type: ignore[arg-type]


def test_session_path_accepts_one_trailing_slash_as_sockjs_node() -> None:
    assert sockjs.parse_path("/1/2/xhr/") == Endpoint("session", "1", "2", "xhr")


@pytest.mark.parametrize("ids", ["/a/a1", "/_/_1", "/1/1", "/abcdefgh_i-j%20/abcdefg_i-j%201"])
def test_session_path_accepts_any_server_and_session_values(ids: str) -> None:
    """SessionURLs.test_anyValue."""
    endpoint = sockjs.parse_path(ids + "/xhr")
    assert endpoint is not None and endpoint.kind == "session"


@pytest.mark.parametrize("ids", ["//", "/a./a", "/a/a.", "/./.", "/", "///"])
def test_session_path_with_empty_or_dotted_segments_is_not_found(ids: str) -> None:
    """S-15, SessionURLs.test_invalidPaths."""
    assert sockjs.parse_path(ids + "/xhr") is None


@pytest.mark.parametrize("path", ["/a/b/nope", "/a/b/XHR", "/a/b/c/xhr", "/a/b/xhr//"])
def test_unknown_transport_or_extra_segments_are_not_found(path: str) -> None:
    assert sockjs.parse_path(path) is None


# --- frames (S-10, S-14, S-16) --------------------------------------------------


def test_open_and_heartbeat_frames() -> None:
    assert (sockjs.OPEN, sockjs.HEARTBEAT) == ("o", "h")


def test_messages_frame_encodes_each_text_as_a_json_string() -> None:
    """S-10: several DDP messages share one frame, compactly."""
    frame = sockjs.messages_frame(['{"msg":"connected","session":"X"}', "a"])
    assert frame == 'a["{\\"msg\\":\\"connected\\",\\"session\\":\\"X\\"}","a"]'


def test_messages_frame_refuses_an_empty_batch() -> None:
    with pytest.raises(ValueError):
        sockjs.messages_frame([])


# The server's required escapes (the suite's `escapable_by_server`).
SERVER_ESCAPED = [*range(0x00, 0x20), *range(0x200C, 0x2010), *range(0x2028, 0x2030)]
SERVER_ESCAPED += [*range(0x2060, 0x2070), *range(0xFFF0, 0x10000)]


@pytest.mark.parametrize("code", SERVER_ESCAPED, ids=lambda code: f"U+{code:04X}")
def test_messages_frame_escapes_the_ranges_sockjs_requires(code: int) -> None:
    """S-16: each of these characters travels as a lowercase \\uXXXX escape."""
    frame = sockjs.messages_frame([chr(code)])
    assert chr(code) not in frame
    assert json.loads(frame[1:]) == [chr(code)]


def test_messages_frame_matches_the_suites_escaped_killer_string() -> None:
    """JSONEncoding.test_xhr_server_encodes compares the escapes byte for byte."""
    chars = [code for code in SERVER_ESCAPED if code >= 255]
    expected = '"' + "".join(f"\\u{code:04x}" for code in chars) + '"'
    frame = sockjs.messages_frame(["".join(map(chr, chars))])
    assert frame[2:-1] == expected


def test_messages_frame_is_ascii_even_for_surrogates_and_astral_text() -> None:
    """The frame always encodes, whatever the client sent (module docstring)."""
    texts = ["\ud800", "\U0001f600 caf\xe9"]
    frame = sockjs.messages_frame(texts)
    assert frame.isascii()
    assert json.loads(frame[1:]) == texts


def test_close_frame() -> None:
    """S-14."""
    assert sockjs.close_frame(*sockjs.CLOSE_GO_AWAY) == 'c[3000,"Go away!"]'
    assert sockjs.close_frame(*sockjs.CLOSE_ANOTHER_CONNECTION) == ('c[2010,"Another connection still open"]')
    assert sockjs.close_frame(*sockjs.CLOSE_INTERRUPTED) == 'c[1002,"Connection interrupted"]'
    assert sockjs.close_frame(*sockjs.CLOSE_NORMAL) == 'c[1000,"Normal closure"]'
    assert sockjs.CLOSE_BROKEN_FRAMING == (3000, "Broken framing.")


# --- per-transport framing (table 3.2) ------------------------------------------


def test_xhr_frames_end_with_a_newline() -> None:
    assert sockjs.xhr_frame("o") == "o\n"
    assert sockjs.xhr_frame('a["a"]') == 'a["a"]\n'


def test_xhr_streaming_prelude_is_2048_h_and_a_newline() -> None:
    assert sockjs.XHR_STREAMING_PRELUDE == "h" * 2048 + "\n"


def test_eventsource_prelude_and_frames() -> None:
    assert sockjs.EVENTSOURCE_PRELUDE == "\r\n"
    assert sockjs.eventsource_frame("o") == "data: o\r\n\r\n"


HTMLFILE_HEAD = """
<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>
""".strip()


def test_htmlfile_prelude_is_the_suites_template_padded_past_1_kib() -> None:
    """HtmlFile.test_transport: the stripped prelude is the template; over 1024 bytes."""
    prelude = sockjs.htmlfile_prelude("callback")
    assert prelude.strip() == HTMLFILE_HEAD % "callback"
    assert len(prelude.encode()) > 1024
    assert prelude.endswith(" \r\n\r\n")


def test_htmlfile_frames_call_p_with_the_frame() -> None:
    assert sockjs.htmlfile_frame("o") == '<script>\np("o");\n</script>\r\n'
    msg = "x" * 4096
    assert sockjs.htmlfile_frame(sockjs.messages_frame([msg])) == (
        '<script>\np("a[\\"' + msg + '\\"]");\n</script>\r\n'
    )


def test_htmlfile_frame_cannot_close_its_script_element() -> None:
    frame = sockjs.messages_frame(["</script><script>alert(1)</script>"])
    wrapped = sockjs.htmlfile_frame(frame)
    assert wrapped.count("</script>") == 1
    literal = wrapped.removeprefix("<script>\np(").removesuffix(");\n</script>\r\n")
    assert json.loads(literal) == frame


def test_jsonp_frames() -> None:
    """JsonPolling.test_transport and test_close."""
    assert sockjs.jsonp_frame("callback", "o") == '/**/callback("o");\r\n'
    assert sockjs.jsonp_frame("x", sockjs.messages_frame(["x"])) == '/**/x("a[\\"x\\"]");\r\n'
    assert sockjs.jsonp_frame("x", sockjs.close_frame(3000, "Go away!")) == (
        '/**/x("c[3000,\\"Go away!\\"]");\r\n'
    )


@pytest.mark.parametrize("callback", ["callback", "x", "a.b_c-D9", "jQuery1.7_2"])
def test_valid_callbacks_are_returned(callback: str) -> None:
    assert sockjs.validate_callback(callback) == callback


@pytest.mark.parametrize("callback", [" ", "*", "abc(", "a b", "a;alert(1)", "é"])
def test_callback_outside_the_allowed_characters_is_invalid(callback: str) -> None:
    """JsonPolling/HtmlFile.test_invalid_callback ("%20", "*", "abc(", "abc%28")."""
    with pytest.raises(RequestError) as caught:
        sockjs.validate_callback(callback)
    assert caught.value.text == 'invalid "callback" parameter'


@pytest.mark.parametrize("callback", [None, ""])
def test_missing_callback_is_required(callback: str | None) -> None:
    with pytest.raises(RequestError) as caught:
        sockjs.validate_callback(callback)
    assert caught.value.text == '"callback" parameter required'


# --- payloads (S-11, S-16) ------------------------------------------------------


def _error(parse: object, *args: object) -> str:
    with pytest.raises(RequestError) as caught:
        parse(*args)  # type: ignore[operator]
    return caught.value.text


@pytest.mark.parametrize(
    ("body", "texts"),
    [(b'["a"]', ["a"]), (b'["a","b"]', ["a", "b"]), (b"[]", []), ('["é"]', ["é"])],
)
def test_send_body_is_a_json_array_of_strings(body: bytes | str, texts: list[str]) -> None:
    assert sockjs.parse_send_body(body) == texts


def test_send_body_empty_is_payload_expected() -> None:
    assert _error(sockjs.parse_send_body, b"") == "Payload expected."


@pytest.mark.parametrize("body", [b'{"a":1}', b'"a"', b"null", b"1"])
def test_send_body_that_is_not_an_array_is_payload_expected(body: bytes) -> None:
    """sockjs-node checks for an array after parsing."""
    assert _error(sockjs.parse_send_body, body) == "Payload expected."


@pytest.mark.parametrize("body", [b"[", b'["a"', b" ", b"\xff", b"[1]", b'["a",null]', b"[" * 100000])
def test_send_body_broken_json_or_non_string_items_is_broken_encoding(body: bytes) -> None:
    """XhrPolling.test_invalid_json; nesting too deep for the parser is not a crash."""
    assert _error(sockjs.parse_send_body, body) == "Broken JSON encoding."


def test_send_body_decodes_every_escape_including_surrogates() -> None:
    """S-16, JSONEncoding.test_xhr_server_decodes: all of \\u0000..\\uffff, paired or lone."""
    escaped = '"' + "".join(f"\\u{code:04x}" for code in range(65536)) + '"'
    (text,) = sockjs.parse_send_body(("[" + escaped + "]").encode())
    assert text == json.loads(escaped)
    assert "\U0010fc00" in text  # \udbff\udc00 became one character
    assert "\ud800" in text  # a lone surrogate is kept
    # ...and the echo gives the client the same string back.
    assert json.loads(sockjs.messages_frame([text])[1:]) == [json.loads(escaped)]


def test_jsonp_send_form_body_reads_field_d() -> None:
    """JsonPolling.test_transport, test_content_types, test_sending_empty_frame."""
    form = "application/x-www-form-urlencoded"
    assert sockjs.parse_jsonp_send_body(b"d=%5B%22x%22%5D", form) == ["x"]
    assert sockjs.parse_jsonp_send_body(b"d=%5B%5D", form) == []
    assert sockjs.parse_jsonp_send_body(b"d=" + quote('["é+"]').encode(), form + "; charset=UTF-8") == ["é+"]
    assert sockjs.parse_jsonp_send_body(b"d=%5B%22a+b%22%5D", form.upper()) == ["a b"]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/json"])
def test_jsonp_send_other_bodies_are_raw_json(content_type: str | None) -> None:
    assert sockjs.parse_jsonp_send_body(b'["%61bc"]', content_type) == ["%61bc"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"d=%5B%22x", "Broken JSON encoding."),
        (b"d=%5B%22%ff%22%5D", "Broken JSON encoding."),
        (b"", "Payload expected."),
        (b"d=", "Payload expected."),
        (b"p=p", "Payload expected."),
    ],
)
def test_jsonp_send_form_errors(body: bytes, text: str) -> None:
    """JsonPolling.test_invalid_json."""
    form = "application/x-www-form-urlencoded"
    assert _error(sockjs.parse_jsonp_send_body, body, form) == text


def test_jsonp_send_raw_body_errors() -> None:
    assert _error(sockjs.parse_jsonp_send_body, b"", "text/plain") == "Payload expected."
    assert _error(sockjs.parse_jsonp_send_body, b"[", "text/plain") == "Broken JSON encoding."


@pytest.mark.parametrize(
    ("frame", "texts"),
    [('["a"]', ["a"]), ('["a","b"]', ["a", "b"]), ('"a"', ["a"]), ("", []), ("[]", [])],
)
def test_websocket_payload_is_an_array_or_a_bare_string(frame: str, texts: list[str]) -> None:
    """S-11: sockjs-client sends arrays, sockjs-node also takes a bare string."""
    assert sockjs.parse_websocket_payload(frame) == texts
    assert sockjs.parse_websocket_payload(frame.encode()) == texts


@pytest.mark.parametrize("frame", ["[", '["a"', "1", "{}", "[1]", "null", b"\xff"])
def test_websocket_payload_broken_is_broken_framing(frame: str | bytes) -> None:
    """S-11: the session closes with 3000 "Broken framing."."""
    assert _error(sockjs.parse_websocket_payload, frame) == "Broken framing."


# --- documents (table 3.2) ------------------------------------------------------


def test_greeting() -> None:
    assert sockjs.GREETING == "Welcome to SockJS!\n"


def test_info_body() -> None:
    body = sockjs.info_body(websocket=True, cookie_needed=False, entropy=123)
    assert body == '{"websocket":true,"origins":["*:*"],"cookie_needed":false,"entropy":123}'
    assert json.loads(sockjs.info_body(False, True, 2**32 - 1)) == {
        "websocket": False,
        "origins": ["*:*"],
        "cookie_needed": True,
        "entropy": 2**32 - 1,
    }


IFRAME_TEMPLATE = re.compile(
    r"""
^<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="(?P<sockjs_url>[^"]*)"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe\(\);
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>$
""".strip()
)


def test_iframe_page_is_the_suites_template() -> None:
    """IframePage.verify: the exact page (sockjs-node 0.3.24's), with the configured URL."""
    url = "https://cdn.example/sockjs-0.3.4.min.js"
    match = IFRAME_TEMPLATE.match(sockjs.iframe_page(url))
    assert match is not None and match["sockjs_url"] == url


def test_iframe_page_escapes_the_url_for_its_attribute() -> None:
    page = sockjs.iframe_page('/s.js?a=1&b="2"')
    assert '<script src="/s.js?a=1&amp;b=&quot;2&quot;"></script>' in page


def test_etag_is_quoted_stable_and_follows_the_body() -> None:
    """IframePage.test_cacheability."""
    page = sockjs.iframe_page("/a.js")
    tag = sockjs.etag(page)
    assert re.fullmatch(r'"[0-9a-f]+"', tag)
    assert sockjs.etag(sockjs.iframe_page("/a.js")) == tag
    assert sockjs.etag(sockjs.iframe_page("/b.js")) != tag


def test_etag_matches_if_none_match_values() -> None:
    tag = sockjs.etag("page")
    assert sockjs.etag_matches(tag, tag)
    assert sockjs.etag_matches(f'"other", W/{tag}', tag)
    assert sockjs.etag_matches("*", tag)
    assert not sockjs.etag_matches('"other"', tag)
    assert not sockjs.etag_matches(None, tag)
    assert not sockjs.etag_matches("", tag)


# --- headers (S-20, S-21) -------------------------------------------------------


@pytest.mark.parametrize("origin", ["test", "null", "https://app.example"])
def test_cors_echoes_an_origin_with_credentials(origin: str) -> None:
    """S-20, including "null" from file:// pages."""
    headers = dict(sockjs.cors_headers(origin))
    assert headers["Access-Control-Allow-Origin"] == origin
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"


@pytest.mark.parametrize("origin", [None, ""])
def test_cors_without_origin_is_star_without_credentials(origin: str | None) -> None:
    assert sockjs.cors_headers(origin) == [("Access-Control-Allow-Origin", "*")]


def test_no_cache_headers() -> None:
    """S-21: exact value; no Expires, no Last-Modified."""
    assert sockjs.no_cache_headers() == [
        ("Cache-Control", "no-store, no-cache, no-transform, must-revalidate, max-age=0")
    ]


def test_http_date_is_the_imf_fixdate() -> None:
    assert sockjs.http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert sockjs.http_date(1_700_000_000.9) == formatdate(1_700_000_000, usegmt=True)


def test_long_cache_headers_last_a_year() -> None:
    now = 1_700_000_000.0
    headers = dict(sockjs.long_cache_headers(now))
    assert headers["Cache-Control"] == "public, max-age=31536000"
    assert parsedate_to_datetime(headers["Expires"]).timestamp() == now + 31536000
    assert headers["Expires"].endswith(" GMT")


def test_options_headers_echo_the_requested_headers() -> None:
    """XhrPolling.test_options and Allow-Headers echo; InfoTest.test_options."""
    assert sockjs.options_headers("OPTIONS, POST", "Content-Type, X-Foo") == [
        ("Access-Control-Allow-Methods", "OPTIONS, POST"),
        ("Access-Control-Max-Age", "31536000"),
        ("Access-Control-Allow-Headers", "Content-Type, X-Foo"),
    ]
    headers = dict(sockjs.options_headers("OPTIONS, GET", None))
    assert "Access-Control-Allow-Headers" not in headers
    assert int(headers["Access-Control-Max-Age"]) > 1000000
