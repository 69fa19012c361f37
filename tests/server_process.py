"""Run a real `dddp` server in a subprocess on a free port, and watch its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on http://([^:/]+):(\d+)/")


class ServerProcess:
    """A `python -m dddp` process; its stderr lines are kept in `log`."""

    def __init__(
        self, args: list[str], env: dict[str, str | None], command: list[str] | None = None, cwd: Path = REPO
    ):
        """`env` adds to this process's environment; a None value removes that variable."""
        self.command = (command or [sys.executable, "-m", "dddp"]) + args
        merged = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.env = {key: value for key, value in merged.items() if value is not None}
        self.log: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port: int | None = None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.log.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_log(self, pattern: str, timeout: float = 30.0, start: int = 0) -> re.Match[str]:
        """The first log line from index `start` matching `pattern`; fails on timeout or exit."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            index = start
            while True:
                while index < len(self.log):
                    match = regex.search(self.log[index])
                    if match:
                        return match
                    index += 1
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"server exited ({self.process.returncode}) before {pattern!r}:\n" + self.text
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line matching {pattern!r} in {timeout}s:\n" + self.text)
                self._changed.wait(min(remaining, 0.2))

    def wait_until_listening(self, timeout: float = 30.0) -> ServerProcess:
        match = self.wait_for_log(LISTENING.pattern, timeout)
        self.port = int(match.group(2))
        return self

    @property
    def text(self) -> str:
        return "\n".join(self.log)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/websocket"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"server did not stop within {timeout}s:\n" + self.text) from None
        self._reader.join(5)
        return self.process.returncode
