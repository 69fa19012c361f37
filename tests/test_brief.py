"""The brief's path, end to end, from README.rst's own text, as a newcomer follows it.

In a scratch folder: a new Django project (`django-admin startproject`), the
README's models, settings and `ddp.py`, its `makemigrations`/`migrate`, then
`DJANGO_SETTINGS_MODULE=mysite.settings dddp` from the project's folder, the
README's Node client watching while the README's shell command writes, and
a clean stop that leaves no PostgreSQL process behind. The commands and files
are taken from the README, so the README cannot drift from what works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_processes
from tests.nodejs import NODE_DIR, requires_node
from tests.server_process import REPO, ServerProcess

BIN = Path(sys.executable).parent


def readme_blocks() -> list[str]:
    """Every literal block (after a `::` paragraph) of README.rst, dedented."""
    lines = (REPO / "README.rst").read_text().splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body = []
        for following in lines[number + 1 :]:
            if following.strip() and not following.startswith("    "):
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


def readme_block(first_line: str) -> str:
    """The README's literal block that starts with `first_line`."""
    found = [block for block in readme_blocks() if block.startswith(first_line)]
    assert len(found) == 1, f"README.rst has {len(found)} blocks starting with {first_line!r}"
    return found[0]


def user_env() -> dict[str, str]:
    """A shell as a user has it: the virtualenv's bin first, no settings, no DATABASE_URL.

    Without DATABASE_URL the project uses the embedded PostgreSQL, in its own folder.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_shell(script: str, cwd: Path) -> str:
    result = subprocess.run(
        ["bash", "-euc", script], cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, (
        f"{script}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path.resolve()
    yield folder
    for process in postgres_processes(folder):  # a failed test must not leave it running
        process.terminate()


@requires_node
def test_the_readme_builds_the_bookstore_and_it_is_live(scratch: Path) -> None:
    # The project and its app, with Django's own commands.
    run_shell(readme_block("django-admin startproject mysite"), scratch)
    project = scratch / "mysite"
    assert (project / "manage.py").exists() and (project / "bookstore" / "models.py").exists()

    # The README's files: the models and ddp.py written, the settings appended to.
    (project / "bookstore" / "models.py").write_text(readme_block("# bookstore/models.py"))
    (project / "bookstore" / "ddp.py").write_text(readme_block("# bookstore/ddp.py"))
    with open(project / "mysite" / "settings.py", "a") as settings:
        settings.write("\n" + readme_block("# mysite/settings.py (add at the end)"))
    run_shell(readme_block("python manage.py makemigrations bookstore"), project)

    # The brief's start command, from the project's folder (on a free port).
    start = readme_block("DJANGO_SETTINGS_MODULE=mysite.settings dddp").splitlines()[0]
    assert start == "DJANGO_SETTINGS_MODULE=mysite.settings dddp"
    server = ServerProcess(
        ["127.0.0.1:0"],
        {k: None for k in ("DATABASE_URL", "PYTHONPATH")} | {"DJANGO_SETTINGS_MODULE": "mysite.settings"},
        command=[str(BIN / "dddp")],
        cwd=project,
    ).wait_until_listening()
    watcher = None
    try:
        # The README's Node client, on the server's port.
        script = readme_block("// watch.js").replace("port: 8000", f"port: {server.port}")
        assert f"port: {server.port}" in script
        node = shutil.which("node")
        assert node is not None
        watcher = subprocess.Popen(
            [node, "-e", script], cwd=NODE_DIR, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        killer = threading.Timer(90, watcher.kill)  # a silent client must not hang the test
        killer.daemon = True
        killer.start()
        messages = read_messages(watcher)
        assert next_message(messages, "ready")

        # The README's write, in another process, reaches the client live.
        run_shell(readme_block('python manage.py shell -c "from bookstore.models'), project)
        author = next_message(messages, "added", "bookstore.author")
        book = next_message(messages, "added", "bookstore.book")
        assert author["fields"] == {"name": "Janet Evanovich", "email": "janet@evanovich.com"}
        assert book["fields"] == {"title": "One for the Money", "author": author["id"]}
    finally:
        if watcher is not None:
            watcher.kill()
            watcher.wait()
        assert server.stop() == 0, server.text
    assert "Traceback" not in server.text

    # manage.py dddp --help starts the embedded PostgreSQL through the settings
    # and replaces itself: PostgreSQL must still not outlive it.
    assert "--pythonpath" in run_shell("python manage.py dddp --help", project)
    deadline = time.monotonic() + 10
    while postgres_processes(project / "pgdata") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert postgres_processes(project / "pgdata") == []


def read_messages(process: subprocess.Popen[str]) -> Iterator[dict[str, object]]:
    """The DDP messages the README's client prints, one JSON text a line."""
    assert process.stdout is not None
    for line in process.stdout:
        if re.match(r"\s*\{", line):
            yield json.loads(line)


def next_message(
    messages: Iterator[dict[str, object]], kind: str, collection: str | None = None, timeout: float = 30
) -> dict[str, object]:
    """The next message of `kind` (and `collection`); pings and other messages are skipped."""
    deadline = time.monotonic() + timeout
    for message in messages:
        if message.get("msg") == kind and collection in (None, message.get("collection")):
            return message
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {kind} {collection or ''} message from the README's client")
