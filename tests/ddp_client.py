"""A small, strict DDP test client over a real WebSocket (websocket-client)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import websocket


class DDPClient:
    """Sends DDP messages and reads replies one by one, failing loudly on timeouts."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        sslopt: dict[str, Any] | None = None,
        **handshake: Any,
    ):
        """`sslopt` is websocket-client's, for `wss://` URLs: `{"context": ssl_context}`;
        `handshake`, its options for the upgrade request (`header=[...]`, `origin=...`,
        `suppress_origin=True`; it sends the server's own origin by default)."""
        self.url = url
        self.ws = websocket.create_connection(url, timeout=timeout, sslopt=sslopt, **handshake)
        self.session: str | None = None
        #: The documents the client holds, as a Meteor client keeps them (collection -> id -> fields).
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}

    # --- raw -----------------------------------------------------------------

    def send(self, message: dict[str, Any] | str) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def send_binary(self, data: bytes) -> None:
        self.ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY)

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        text = self.ws.recv()
        assert text, "the server closed the connection"
        message = json.loads(text)
        self._apply(message)
        return message

    def _apply(self, message: dict[str, Any]) -> None:
        """Keep `collections` as a strict (Meteor 1.x) client would, failing on D-58 violations."""
        kind = message.get("msg")
        if kind not in ("added", "changed", "removed"):
            return
        docs = self.collections.setdefault(message["collection"], {})
        doc_id = message["id"]
        if kind == "added":
            assert doc_id not in docs, f"duplicate added (D-58): {message}"
            docs[doc_id] = dict(message.get("fields", {}))
        elif kind == "changed":
            assert doc_id in docs, f"changed for a document the client does not hold (D-58): {message}"
            assert message.get("fields") or message.get("cleared"), f"empty changed (D-58): {message}"
            docs[doc_id].update(message.get("fields", {}))
            for name in message.get("cleared", []):
                docs[doc_id].pop(name, None)
        else:
            assert doc_id in docs, f"removed for a document the client does not hold (D-58): {message}"
            del docs[doc_id]

    def collections_view(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The non-empty collections the client holds."""
        return {name: docs for name, docs in self.collections.items() if docs}

    def wait_for_view(
        self, collection: str, expected: dict[str, dict[str, Any]], timeout: float = 10.0
    ) -> None:
        """Read messages until the client's `collection` equals `expected` (fails after `timeout`)."""
        self.wait_until(
            lambda: self.collections.get(collection, {}) == expected,
            lambda: f"view of {collection} never became {expected}: {self.collections.get(collection)}",
            timeout,
        )

    def wait_until(self, done: Callable[[], bool], failure: Callable[[], str], timeout: float = 10.0) -> None:
        """Read messages until `done()` holds; fail with `failure()` after `timeout` seconds."""
        import time

        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            assert remaining > 0, failure()
            try:
                self.recv(timeout=remaining)
            except websocket.WebSocketTimeoutException:
                continue

    def recv_until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Messages up to and including the first one `done` accepts (pings answered)."""
        seen = []
        while True:
            message = self.recv(timeout)
            if message.get("msg") == "ping":
                self.send({"msg": "pong", **({"id": message["id"]} if "id" in message else {})})
                continue
            seen.append(message)
            if done(message):
                return seen

    def assert_silent(self, seconds: float = 0.3) -> None:
        """Nothing arrives for `seconds`."""
        self.ws.settimeout(seconds)
        try:
            text = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        raise AssertionError(f"expected no message, got {text!r}")

    def recv_close(self, timeout: float = 5.0) -> tuple[int, str]:
        """Read until the server's close frame; return its (code, reason)."""
        self.ws.settimeout(timeout)
        while True:
            opcode, frame = self.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                return code, data[2:].decode("utf-8")
            if opcode == websocket.ABNF.OPCODE_TEXT:
                continue

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - best effort in teardown
            pass

    # --- DDP -----------------------------------------------------------------

    def connect(self, version: str = "1", support: list[str] | None = None) -> dict[str, Any]:
        self.send({"msg": "connect", "version": version, "support": support or [version]})
        reply = self.recv()
        if reply.get("msg") == "connected":
            self.session = reply["session"]
        return reply

    def call(self, method: str, *params: Any, id: str = "1", **extra: Any) -> dict[str, Any]:
        """Call a method; return {'result': <result message>, 'updated': ..., 'messages': [...]}."""
        self.send({"msg": "method", "method": method, "params": list(params), "id": id, **extra})
        got: dict[str, Any] = {}

        def done(message: dict[str, Any]) -> bool:
            if message.get("msg") == "result" and message.get("id") == id:
                got["result"] = message
            if message.get("msg") == "updated" and id in message.get("methods", []):
                got["updated"] = message
            return "result" in got and "updated" in got

        got["messages"] = self.recv_until(done)
        return got

    def sub(self, name: str, *params: Any, id: str = "s1") -> list[dict[str, Any]]:
        """Subscribe; return the messages up to this sub's `ready` or `nosub`."""
        self.send({"msg": "sub", "name": name, "params": list(params), "id": id})
        return self.recv_until(
            lambda m: (
                (m.get("msg") == "ready" and id in m.get("subs", []))
                or (m.get("msg") == "nosub" and m.get("id") == id)
            )
        )

    def __enter__(self) -> DDPClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
