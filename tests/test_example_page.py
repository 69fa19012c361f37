"""The example's live page at `/`, in a real browser (Debian's Chromium, driven by Playwright).

The example server runs on a scratch database; another process writes through
the ORM (`manage.py shell`, as a user would), and the page must show each
change within a second of that process's commit. Stopping and restarting the
server on the same port, the page says it is reconnecting, reconnects by
itself and shows what changed meanwhile. With DDDP_SCREENSHOT=path the first
test saves a screenshot of the page there (the README's docs/example-page.png).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import scratch_database
from tests.server.test_browser import CHROMIUM, CHROMIUM_FLAGS, sync_playwright
from tests.server_process import ServerProcess
from tests.test_example import MANAGE, manage

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="Playwright is not installed"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]

DATABASE = "dddp_example_page_test"
SEED = """
from bookstore.models import Author, Book
Author.objects.all().delete()
janet = Author.objects.create(name='Janet Evanovich', email='janet@evanovich.com')
Book.objects.create(title='One for the Money', author=janet)
Book.objects.create(title='Two for the Dough', author=janet)
terry = Author.objects.create(name='Terry Pratchett', email='terry@discworld.example')
Book.objects.create(title='Guards! Guards!', author=terry)
Book.objects.create(title='Mort', author=terry)
"""
JANET = ["Janet Evanovich", "janet@evanovich.com"]
TERRY = ["Terry Pratchett", "terry@discworld.example"]
URSULA = ["Ursula K. Le Guin", "ursula@earthsea.example"]
SEEDED = [[*JANET, ["One for the Money", "Two for the Dough"]], [*TERRY, ["Guards! Guards!", "Mort"]]]

#: What the page lists, in its order (as window.listing()): [[name, email, [titles]], ...].
LISTING = """() => [...document.querySelectorAll('#authors > li[data-id]')].map((item) => [
  item.querySelector('.name').textContent,
  item.querySelector('.email').textContent,
  [...item.querySelectorAll('.book')].map((book) => book.textContent),
])"""

#: Records in window.shownAt when the page first lists `expected` (a JSON text).
WATCH = """(expected) => {
  window.shownAt = null;
  const observer = new MutationObserver(() => {
    if (JSON.stringify(window.listing()) === expected) { window.shownAt = Date.now(); observer.disconnect(); }
  });
  observer.observe(document.getElementById('authors'), {childList: true, subtree: true, characterData: true});
}"""

#: Records every later value of the state element's data-state in window.states.
RECORD_STATES = """() => {
  window.states = [];
  const state = document.getElementById('state');
  new MutationObserver(() => window.states.push(state.dataset.state))
    .observe(state, {attributes: true, attributeFilter: ['data-state']});
}"""


@pytest.fixture(scope="module")
def example_database_url(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    with scratch_database(DATABASE, django_db_blocker) as url:
        manage("migrate", "--no-input", url=url)
        yield url


def start_example(start_server: Callable[..., ServerProcess], url: str, address: str) -> ServerProcess:
    return start_server(
        "dddp", address, command=MANAGE, DATABASE_URL=url, DJANGO_SETTINGS_MODULE=None
    ).wait_until_listening()


@pytest.fixture
def example_server(
    start_server: Callable[..., ServerProcess], example_database_url: str
) -> Iterator[ServerProcess]:
    manage("shell", "-c", SEED, url=example_database_url)
    server = start_example(start_server, example_database_url, "127.0.0.1:0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(example_database_url: str) -> Iterator[Any]:
    # After the database: it is dropped (through the ORM) once Playwright's loop is gone.
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, example_server: ServerProcess) -> Iterator[Any]:
    """The example's page, connected, listing the seeded authors and books."""
    page = browser.new_page(viewport={"width": 900, "height": 600})
    page.add_init_script(f"window.listing = {LISTING};")
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(example_server.http_url + "/")
        wait_for_state(page, "connected", 10)
        wait_for_listing(page, SEEDED, 5)
        yield page
    finally:
        page.close()
    assert not errors, f"the page's scripts raised: {errors}"


def describe(page: Any) -> str:
    state, listing = page.evaluate("[document.getElementById('state').dataset.state, window.listing()]")
    return f"state {state!r}, listing {listing}"


def wait_for_state(page: Any, state: str, timeout: float) -> None:
    """Wait until the page's connection state is `state`."""
    deadline = time.monotonic() + timeout
    while page.evaluate("document.getElementById('state').dataset.state") != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"the page was not {state} within {timeout} s: {describe(page)}")
        time.sleep(0.05)


def wait_for_listing(page: Any, expected: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while page.evaluate("window.listing()") != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never listed {expected} within {timeout} s: {describe(page)}")
        time.sleep(0.05)


def write(code: str, url: str) -> float:
    """Run `code` in another process (`manage.py shell`); the time.time() after its last commit."""
    shell = manage("shell", "-c", code + "\nimport time\nprint('committed at', repr(time.time()))", url=url)
    match = re.search(r"committed at ([0-9.]+)", shell.stdout)
    assert match, shell.stdout + shell.stderr
    return float(match.group(1))


def change(page: Any, url: str, code: str, expected: list[Any]) -> float:
    """Seconds from the commit of `code`, in another process, until the page lists `expected`."""
    page.evaluate(WATCH, json.dumps(expected, separators=(",", ":"), ensure_ascii=False))
    committed = write(code, url)
    deadline = committed + 2.0  # time.time(): the page's Date.now() reads the same clock
    while page.evaluate("window.shownAt") is None:
        if time.time() > deadline:
            raise AssertionError(
                f"the page did not list {expected} within 2 s of the commit: {describe(page)}"
            )
        time.sleep(0.02)
    latency = page.evaluate("window.shownAt") / 1000 - committed
    print(f"page updated {latency * 1000:.0f} ms after the commit")
    assert latency < 1.0, f"the page listed {expected} {latency:.3f} s after the commit (limit 1 s)"
    return latency


def test_the_page_shows_each_change_from_another_process_within_a_second(
    page: Any, example_database_url: str
) -> None:
    url = example_database_url
    change(
        page,
        url,
        "from bookstore.models import Author, Book\n"
        "ursula = Author.objects.create(name='Ursula K. Le Guin', email='ursula@earthsea.example')\n"
        "Book.objects.create(title='A Wizard of Earthsea', author=ursula)",
        [*SEEDED, [*URSULA, ["A Wizard of Earthsea"]]],
    )
    change(
        page,
        url,
        "from bookstore.models import Book\n"
        "book = Book.objects.get(title='Two for the Dough')\n"
        "book.title = 'Three to Get Deadly'\n"
        "book.save()",
        [
            [*JANET, ["One for the Money", "Three to Get Deadly"]],
            [*TERRY, ["Guards! Guards!", "Mort"]],
            [*URSULA, ["A Wizard of Earthsea"]],
        ],
    )
    change(
        page,
        url,
        "from bookstore.models import Book\nBook.objects.get(title='Guards! Guards!').delete()",
        [
            [*JANET, ["One for the Money", "Three to Get Deadly"]],
            [*TERRY, ["Mort"]],
            [*URSULA, ["A Wizard of Earthsea"]],
        ],
    )
    assert page.text_content("#counts") == "3 author(s), 4 book(s)."
    if os.environ.get("DDDP_SCREENSHOT"):
        page.screenshot(path=os.environ["DDDP_SCREENSHOT"])


def test_the_page_reconnects_when_the_server_restarts_and_shows_what_changed_meanwhile(
    page: Any,
    example_server: ServerProcess,
    example_database_url: str,
    start_server: Callable[..., ServerProcess],
) -> None:
    page.evaluate(RECORD_STATES)
    example_server.stop()
    wait_for_state(page, "reconnecting", 5)
    # Made while no server runs: the book removed must not stay on the page.
    write(
        "from bookstore.models import Author, Book\n"
        "Book.objects.get(title='Mort').delete()\n"
        "Book.objects.create(title='The Colour of Magic', author=Author.objects.get(name='Terry Pratchett'))",
        example_database_url,
    )
    restarted = start_example(start_server, example_database_url, f"127.0.0.1:{example_server.port}")
    try:
        listening = time.monotonic()
        # Retries are at most 5 s apart.
        wait_for_state(page, "connected", 10)
        print(f"page reconnected {time.monotonic() - listening:.1f} s after the new server listened")
        wait_for_listing(page, [SEEDED[0], [*TERRY, ["Guards! Guards!", "The Colour of Magic"]]], 2)
        assert page.evaluate("window.states") == ["reconnecting", "connected"]
        assert page.text_content("#counts") == "2 author(s), 4 book(s)."
    finally:
        restarted.stop()
