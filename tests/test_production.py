"""docs/production.rst, run: the example with DEBUG off, behind the page's own nginx block, over TLS.

The page marks each configuration it shows with an RST comment line right
before its code block: `.. tested-nginx-config: ...` and `..
tested-systemd-unit: ...`. `docs_block` takes such a block verbatim.
`nginx_site` replaces only its placeholders (the upstream address, the two
`listen` ports, the certificate paths; each must be there exactly once), and
nginx runs it inside an nginx.conf of the test's own (prefix, pid, logs, temp
folders). The example's server is started as the page's systemd unit says.
"""

from __future__ import annotations

import configparser
import http.client
import http.cookiejar
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websocket

from dddp.conf import DEFAULTS
from tests.databases import scratch_database
from tests.ddp_client import DDPClient
from tests.server_process import REPO, ServerProcess

DOCS = REPO / "docs" / "production.rst"
MANAGE = [sys.executable, str(REPO / "example" / "manage.py")]
DATABASE = "dddp_production_test"
VENV_DDDP = str(Path(sys.executable).parent / "dddp")  # the console script beside this python
#: The example's production switches (example/example_project/settings.py); None: unset.
SWITCHES = (
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_STATIC_ROOT",
    "DJANGO_TLS_PROXY",
)


def docs_block(marker: str) -> str:
    """The code block right after the comment line starting with `marker`, dedented."""
    lines = DOCS.read_text().splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith(marker)]
    assert len(starts) == 1, f"{DOCS}: expected one line starting with {marker!r}, found {len(starts)}"
    rest = iter(lines[starts[0] + 1 :])
    for line in rest:
        if line.strip():
            assert line.startswith(".. code-block::"), f"{DOCS}: {marker!r} must be followed by a code block"
            break
    block: list[str] = []
    for line in rest:
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    while block and (not block[0].strip() or block[0].lstrip().startswith(":")):  # blank, :options:
        block.pop(0)
    text = "\n".join(block).rstrip() + "\n"
    indent = min(len(line) - len(line.lstrip()) for line in text.splitlines() if line.strip())
    return "\n".join(line[indent:] for line in text.splitlines()) + "\n"


def replace_once(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert text.count(old) == 1, f"the docs' block must contain {old!r} exactly once:\n{text}"
        text = text.replace(old, new)
    return text


# --- the example, DEBUG off ---------------------------------------------------


def example_env(database_url: str, **switches: str) -> dict[str, str | None]:
    """The environment of an example process: the test database, no tests.settings, `switches`."""
    env: dict[str, str | None] = dict.fromkeys(SWITCHES)
    env.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE=None, **switches)
    return env


def manage(*args: str, env: dict[str, str | None]) -> str:
    merged = {**os.environ, **env}
    result = subprocess.run(
        [*MANAGE, *args],
        cwd=REPO,
        env={key: value for key, value in merged.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def example_database_url(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A fresh, migrated database for the example, with one author."""
    with scratch_database(DATABASE, django_db_blocker) as url:
        env = example_env(url)
        manage("migrate", "--no-input", env=env)
        manage(
            "shell",
            "-c",
            "from bookstore.models import Author; "
            "Author.objects.create(name='Janet Evanovich', email='janet@evanovich.com')",
            env=env,
        )
        yield url


@pytest.fixture(scope="module")
def fresh_checkout_server(start_server, example_database_url: str) -> ServerProcess:  # type: ignore[no-untyped-def]
    """The example with DEBUG off and nothing else: no collectstatic, no proxy."""
    env = example_env(example_database_url, DJANGO_DEBUG="0")
    return start_server("dddp", "127.0.0.1:0", command=MANAGE, **env).wait_until_listening()


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory, example_database_url: str) -> Path:
    """The example's static files, collected as the docs say (hashed and compressed names)."""
    folder = tmp_path_factory.mktemp("static")
    env = example_env(example_database_url, DJANGO_DEBUG="0", DJANGO_STATIC_ROOT=str(folder))
    manage("collectstatic", "--no-input", "--verbosity", "0", env=env)
    return folder


@pytest.fixture(scope="module")
def production_server(example_database_url: str, static_root: Path) -> Iterator[ServerProcess]:
    """The example configured as docs/production.rst says, started as the page's systemd unit does.

    The unit's WorkingDirectory, Environment and ExecStart, with the example's
    folder, settings module and venv for the page's, and port 0 for the
    instance's.
    """
    service = systemd_unit()["Service"]
    command = shlex.split(service["ExecStart"].replace("/srv/mysite/.venv/bin/dddp", VENV_DDDP))
    command = [argument.replace("%i", "0") for argument in command]
    name, _, value = service["Environment"].partition("=")
    env = example_env(
        example_database_url,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="test-production-secret-key-" + "x" * 40,
        DJANGO_STATIC_ROOT=str(static_root),
        DJANGO_TLS_PROXY="1",
    )
    env[name] = value.replace("mysite.settings", "example_project.settings")
    working_directory = Path(service["WorkingDirectory"].replace("/srv/mysite", str(REPO / "example")))
    server = ServerProcess(command[1:], env, command=command[:1], cwd=working_directory)
    try:
        yield server.wait_until_listening()
    finally:
        server.stop()


def fetch(
    url: str, context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET, errors included, redirects not followed."""
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def stylesheet(login_page: bytes, name: str) -> str:
    """The URL of the admin stylesheet `name` (base.css, or base.<hash>.css) the page links."""
    stem, suffix = name.rsplit(".", 1)
    pattern = rf'href="(/static/admin/css/{stem}(?:\.[0-9a-f]{{12}})?\.{suffix})"'
    match = re.search(pattern, login_page.decode())
    assert match, f"the login page links no {name}:\n{login_page.decode()[:2000]}"
    return match.group(1)


def assert_admin_css(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 200, (status, body[:200])
    assert headers["Content-Type"].startswith("text/css"), headers
    assert b"DJANGO Admin styles" in body  # the first lines of the admin's base.css


def test_example_as_run_py_starts_it_debug_on_serves_the_admin_css(  # type: ignore[no-untyped-def]
    start_server, example_database_url: str
) -> None:
    env = example_env(example_database_url)  # no DJANGO_DEBUG: on
    server = start_server("dddp", "127.0.0.1:0", command=MANAGE, **env).wait_until_listening()
    status, _, page = fetch(server.http_url + "/admin/login/")
    assert status == 200
    assert_admin_css(*fetch(server.http_url + stylesheet(page, "base.css")))
    server.stop()


def raw_get(server: ServerProcess, path: str) -> int:
    """The status of a GET of `path` exactly as written (urllib would normalise the dots)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("debug", ["1", "0"])
def test_a_static_path_out_of_the_static_folders_is_a_404_without_a_traceback(  # type: ignore[no-untyped-def]
    start_server, example_database_url: str, debug: str
) -> None:
    """Issue 9: it was a 500 with a traceback (DEBUG's static files handler); it serves no file."""
    env = example_env(example_database_url, DJANGO_DEBUG=debug)
    server = start_server("dddp", "127.0.0.1:0", command=MANAGE, **env).wait_until_listening()
    for path in (
        "/static/../../etc/passwd",
        "/static/..%2f..%2fetc/passwd",
        "/static/admin/../../../etc/passwd",
    ):
        assert raw_get(server, path) == 404, path
    assert raw_get(server, "/static/admin/css/base.css") == 200  # real files still are served
    server.stop()
    assert "Traceback" not in server.text


def test_example_with_debug_off_serves_the_admin_css_without_collectstatic(
    fresh_checkout_server: ServerProcess,
) -> None:
    status, _, page = fetch(fresh_checkout_server.http_url + "/admin/login/")
    assert status == 200
    css = stylesheet(page, "base.css")
    assert css == "/static/admin/css/base.css"  # found in the app, no hashed name
    assert_admin_css(*fetch(fresh_checkout_server.http_url + css))
    assert fetch(fresh_checkout_server.http_url + "/static/admin/css/no-such.css")[0] == 404


def test_collected_static_files_have_hashed_names_cached_forever_and_gzip(
    production_server: ServerProcess,
) -> None:
    status, _, page = fetch(production_server.http_url + "/admin/login/")
    assert status == 200
    css = stylesheet(page, "base.css")
    assert css != "/static/admin/css/base.css", "the page should link the hashed name from the manifest"
    status, headers, body = fetch(production_server.http_url + css)
    assert_admin_css(status, headers, body)
    assert "immutable" in headers["Cache-Control"], headers
    status, headers, _ = fetch(production_server.http_url + css, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip", headers


# --- nginx in front, as the docs configure it ----------------------------------------


@dataclass
class Nginx:
    https_port: int
    http_port: int
    context: ssl.SSLContext  # trusts the test's self-signed certificate

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}/websocket"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by `openssl req -x509`."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def nginx_site(upstream_port: int, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """The docs' nginx block, with its placeholders replaced and nothing else."""
    return replace_once(
        docs_block(".. tested-nginx-config"),
        {
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "/etc/letsencrypt/live/example.com/fullchain.pem": str(cert),
            "/etc/letsencrypt/live/example.com/privkey.pem": str(key),
        },
    )


def nginx_conf(folder: Path, site: Path) -> str:
    """A whole nginx.conf around the docs' block: everything in `folder`, in the foreground."""
    # As root, nginx's workers would run as nobody, who cannot enter the
    # test's private temp folder.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
"""


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    """The nginx executable (often in /usr/sbin, off a user's PATH); skips the test without one."""
    binary = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx): the docs' nginx block is untested")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the nginx test")
    return binary


@pytest.fixture(scope="module")
def nginx(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory, production_server: ServerProcess
) -> Iterator[Nginx]:
    """nginx with the docs' block, in front of `production_server`; always stopped afterwards."""
    folder = tmp_path_factory.mktemp("nginx")
    cert, key = self_signed_certificate(folder)
    https_port, http_port = free_port(), free_port()
    assert production_server.port is not None
    (folder / "site.conf").write_text(nginx_site(production_server.port, http_port, https_port, cert, key))
    (folder / "nginx.conf").write_text(nginx_conf(folder, folder / "site.conf"))
    with open(folder / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(
            [nginx_binary, "-p", str(folder), "-c", str(folder / "nginx.conf")],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,  # its own process group: the workers go with it
        )
    server = Nginx(https_port, http_port, ssl.create_default_context(cafile=str(cert)))
    try:
        wait_for_port(https_port, process, folder)
        yield server
    finally:
        stop_nginx(process)


def wait_for_port(port: int, process: subprocess.Popen[bytes], folder: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"nginx exited ({process.returncode}):\n"
                + (folder / "stderr.log").read_text()
                + "\n"
                + (folder / "site.conf").read_text()
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx did not listen on {port} within {timeout}s") from None
            time.sleep(0.05)


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (nginx's fast stop: the master waits for its workers), then SIGKILL to its group."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the master and its workers: the group it started
        process.wait(5)


def test_ddp_over_wss_through_the_docs_nginx_config(nginx: Nginx) -> None:
    with DDPClient(nginx.wss_url, sslopt={"context": nginx.context}) as ddp:
        assert ddp.connect()["msg"] == "connected"
        assert ddp.sub("AllBooks", id="all")[-1] == {"msg": "ready", "subs": ["all"]}
        authors = ddp.collections["bookstore.author"]
        assert [author["email"] for author in authors.values()] == ["janet@evanovich.com"]
        reply = ddp.call("add_book", "Two for the Dough", "janet@evanovich.com", id="add")
        book_id = reply["result"]["result"]
        # The book written by the method reaches the subscription live.
        assert ddp.collections["bookstore.book"][book_id]["title"] == "Two for the Dough"
        assert ddp.call("count_books", id="count")["result"]["result"] >= 1
    with DDPClient(nginx.wss_url + "/", sslopt={"context": nginx.context}) as ddp:
        assert ddp.connect()["msg"] == "connected"


def test_sockjs_through_the_docs_nginx_config_streams_without_buffering(nginx: Nginx) -> None:
    """Meteor browsers' SockJS: the websocket, and an xhr-streaming response whose frames
    arrive while it is still open (nginx buffers responses unless dddp says not to)."""
    base = f"/sockjs/000/{uuid.uuid4().hex[:8]}"
    connect = json.dumps({"msg": "connect", "version": "1", "support": ["1"]})
    ws = websocket.create_connection(
        f"wss://127.0.0.1:{nginx.https_port}{base}/websocket", sslopt={"context": nginx.context}, timeout=10
    )
    try:
        assert ws.recv() == "o"
        ws.send(json.dumps([connect]))
        assert json.loads(json.loads(ws.recv()[1:])[0])["msg"] == "connected"
    finally:
        ws.close()
    connection = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, context=nginx.context, timeout=10)
    try:
        connection.request("POST", base + "x/xhr_streaming")
        stream = connection.getresponse()
        assert stream.status == 200
        assert stream.read(2049) == b"h" * 2048 + b"\n"
        assert stream.read(2) == b"o\n"
        sender = http.client.HTTPSConnection("127.0.0.1", nginx.https_port, context=nginx.context, timeout=10)
        sender.request("POST", base + "x/xhr_send", body=json.dumps([connect]))
        assert sender.getresponse().status == 204
        sender.close()
        frame = b""
        while not frame.endswith(b"\n"):
            frame += stream.read(1)
        assert json.loads(json.loads(frame[1:])[0])["msg"] == "connected"
    finally:
        connection.close()


def test_pages_and_hashed_static_files_through_the_docs_nginx_config(nginx: Nginx) -> None:
    status, _, page = fetch(nginx.https_url + "/", nginx.context)
    assert status == 200
    # Django saw the client's Host, port included ($http_host).
    assert f"127.0.0.1:{nginx.https_port}/websocket" in page.decode()
    status, _, login = fetch(nginx.https_url + "/admin/login/", nginx.context)
    assert status == 200
    status, headers, body = fetch(nginx.https_url + stylesheet(login, "base.css"), nginx.context)
    assert_admin_css(status, headers, body)
    assert "immutable" in headers["Cache-Control"], headers


def test_admin_login_form_posts_through_the_docs_nginx_config(nginx: Nginx) -> None:
    """The CSRF check passes: Django knows the request is https (X-Forwarded-Proto)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=nginx.context), urllib.request.HTTPCookieProcessor(jar)
    )
    url = nginx.https_url + "/admin/login/"
    with opener.open(url, timeout=10) as response:
        form = response.read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert match, form[:2000]
    assert {cookie.name: cookie.secure for cookie in jar} == {"csrftoken": True}  # CSRF_COOKIE_SECURE
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": match.group(1), "username": "nobody", "password": "wrong", "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(url, data=data, headers={"Origin": nginx.https_url, "Referer": url})
    try:
        with opener.open(request, timeout=10) as response:
            status, page = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, page = error.code, error.read().decode()
    assert status == 200, f"{status}: {page[:500]}"  # 403 is the CSRF failure
    assert "Please enter the correct username and password" in page


def test_plain_http_is_redirected_to_https_by_the_docs_nginx_config(nginx: Nginx) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", nginx.http_port, timeout=10)
    try:
        connection.request("GET", "/admin/?a=1")
        response = connection.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == "https://127.0.0.1/admin/?a=1"
    finally:
        connection.close()


# --- the systemd unit -------------------------------------------------------------


def systemd_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(docs_block(".. tested-systemd-unit"))
    return unit


def test_systemd_unit_stops_gracefully_and_restarts() -> None:
    from dddp.server.app import STOP_OVERRUN

    service = systemd_unit()["Service"]
    assert service["Type"] == "simple"
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    # A graceful stop lasts DDDP_SHUTDOWN_TIMEOUT, then at most STOP_OVERRUN.
    assert float(service["TimeoutStopSec"]) >= 2 * (DEFAULTS["SHUTDOWN_TIMEOUT"][0] + STOP_OVERRUN)
    assert int(service["LimitNOFILE"]) >= 10_000
    assert service["ExecStart"] == service["WorkingDirectory"] + "/.venv/bin/dddp 127.0.0.1:%i"
    assert service["Environment"].startswith("DJANGO_SETTINGS_MODULE=")


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = replace_once(docs_block(".. tested-systemd-unit"), {"/srv/mysite/.venv/bin/dddp": VENV_DDDP})
    (tmp_path / "dddp@.service").write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "dddp@8000.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr
