"""The browser harness every page test shares (Playwright + Debian's chromium).

A test module imports ``base_url`` and ``browser`` (module-scoped fixtures: the app served by
werkzeug on 127.0.0.1 with the committed artifacts and a temporary SQLite database, and one
headless chromium) and builds its ``page`` fixture with :func:`open_page`. Importing this
module skips the importing test module when Playwright is missing, and when chromium is
missing outside CI; under CI a missing browser is a failure.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("FABLENS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
TIMEOUT_MS = 20_000

if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
    # CI installs Debian's chromium through `make test`; there a missing browser is a failure.
    if os.environ.get("CI"):
        raise RuntimeError(f"no chromium at {CHROMIUM}: `make browser` should have installed it")
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The app served by werkzeug on 127.0.0.1, a free port, for the whole module."""
    from tests.conftest import serving
    from webapp import create_app
    from webapp.db import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 't.sqlite'}"
    upgrade(url)
    with serving(create_app({"TESTING": True, "DATABASE_URL": url})) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, base_url: str, height: int = 768) -> Iterator:
    """A fresh 1366-wide page recording every request URL and every console error (for a
    module's ``page`` fixture: ``yield from open_page(browser, base_url)``)."""
    context = browser.new_context(viewport={"width": 1366, "height": height},
                                  accept_downloads=True, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.requests, page.console_errors = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    context.close()
