"""The Jobs pages in a real browser (/jobs, /jobs/<id>): a job started from the page by
keyboard, its progress bar moving, Cancel, and a finished scoring job's result link, with no
console errors, no request leaving the server and no sideways scrolling at 1366x768.

The server here runs the job queue's worker in its own process (as gunicorn's hooks start it
in each web worker), and trains with ``fake_train.py`` (progress lines with a pause per
epoch), so the bar moves at a known pace.
"""
from __future__ import annotations

import io
import re
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.browser import browser, open_page, playwright_sync  # noqa: F401 (fixtures)
from tests.webapp.test_layout import OVERFLOW

pytestmark = pytest.mark.pages

FAKE = [sys.executable, str(Path(__file__).with_name("fake_train.py"))]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app with its job worker running, served on 127.0.0.1."""
    from tests.conftest import serving
    from webapp import create_app, jobs
    from webapp.db import upgrade

    tmp = tmp_path_factory.mktemp("jobs-page")
    url = f"sqlite:///{tmp / 't.sqlite'}"
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "JOBS_DIR": str(tmp / "jobs"),
                      "MODEL_STORE": str(tmp / "models"), "JOBS_HEARTBEAT_SECONDS": 0.2,
                      "JOBS_TRAIN_COMMAND": FAKE, "JOBS_QUEUE": f"page-{uuid.uuid4().hex[:8]}"})
    jobs.start_worker(app)
    try:
        with serving(app) as base:
            yield base
    finally:
        jobs.stop_worker(app)


@pytest.fixture
def page(browser, served):
    yield from open_page(browser, served)


def tab_to(page, selector: str, limit: int = 25) -> None:
    """Press Tab until the element ``selector`` has the focus (it is reachable by keyboard)."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} is not reached by Tab")


def maps_npz() -> bytes:
    from pipelines.wafermap.examples import PATTERNS, synthetic_map
    from pipelines.wafermap.ingest import write_npz

    rng = np.random.default_rng(3)
    buffer = io.BytesIO()
    write_npz(buffer, [synthetic_map(PATTERNS[i % len(PATTERNS)], 40, rng) for i in range(300)])
    return buffer.getvalue()


def test_start_watch_cancel_and_download_by_keyboard(page, served, tmp_path):
    expect = playwright_sync.expect
    page.goto("/jobs")
    assert page.evaluate(OVERFLOW) == []

    # a training job, by keyboard: options typed, Enter starts it
    page.keyboard.press("Tab")
    tab_to(page, "input[name=kind][value=train]")
    expect(page.locator("input[name=kind][value=train]")).to_be_checked()
    tab_to(page, "#job-options")
    page.keyboard.press("Control+A")
    page.keyboard.type('{"epochs": 80, "pause": 0.1}')
    tab_to(page, "#job-start")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    training = page.url

    # its bar moves as the epochs go by, with the count beside it
    bar = page.locator("#job-bar")
    expect(page.locator("#job-count")).to_contain_text("epochs", timeout=30_000)
    first = float(bar.get_attribute("value") or 0)
    deadline = time.monotonic() + 20
    while float(bar.evaluate("b => b.value")) <= first + 2:
        assert time.monotonic() < deadline, "the progress bar did not move"
        time.sleep(0.3)
    assert bar.evaluate("b => b.max") == 80
    page.screenshot(path=str(tmp_path / "job-running.png"), full_page=True)
    assert page.evaluate(OVERFLOW) == []

    # Cancel, by keyboard
    tab_to(page, "#job-cancel")
    page.keyboard.press("Enter")
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=20_000)
    expect(page.locator("#job-cancel")).to_be_hidden()
    assert float(bar.evaluate("b => b.value")) < 80

    # a scoring job: "Score a file" by the arrow key, the module by the arrow key, a file
    page.goto("/jobs")
    page.locator("input[name=kind][value=train]").focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("input[name=kind][value=score]")).to_be_checked()
    expect(page.locator("#train-fields")).to_be_hidden()
    tab_to(page, "#job-module")
    page.keyboard.press("ArrowDown")  # Sensor -> Wafer map
    expect(page.locator("#job-module")).to_have_value("wafermap")
    expect(page.locator("#batch-note")).to_be_hidden()
    expect(page.locator("input[name=data][value=upload]")).to_be_checked()
    page.locator("#job-file").set_input_files(
        {"name": "lot 9.npz", "mimeType": "application/octet-stream", "buffer": maps_npz()})
    tab_to(page, "#job-threshold")
    page.keyboard.type("0.9")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"), timeout=30_000)
    expect(page.locator("#job-state")).to_have_text("done", timeout=60_000)
    link = page.get_by_role("link", name="Download the results CSV")
    expect(link).to_be_visible()
    expect(page.locator("#job-result")).to_contain_text("300 scored")
    with page.expect_download() as download:
        tab_to(page, "a[download]")
        page.keyboard.press("Enter")
    rows = Path(download.value.path()).read_text().splitlines()
    assert len(rows) == 301 and rows[0].startswith("index,name,class")
    history = page.get_by_role("link", name=re.compile(r"run \d+ in History"))
    expect(history).to_be_visible()
    page.screenshot(path=str(tmp_path / "job-done.png"), full_page=True)
    assert page.evaluate(OVERFLOW) == []

    # a job that fails, on a file with a long name: its reason shown, nothing wider than the page
    name = "W" * 200 + ".csv"
    data = b"lot,step\n" + b"A,1\n" * 20
    opened = page.request.post("/api/v1/uploads", data={"name": name, "size": len(data)}).json()
    page.request.post(f"/api/v1/uploads/{opened['id']}?offset=0", data=data,
                      headers={"Content-Type": "application/octet-stream"})
    failed = page.request.post("/api/v1/jobs", data={"kind": "score", "module": "sensor",
                                                     "upload": opened["id"]}).json()
    page.goto(failed["url"])
    expect(page.locator("#job-state")).to_have_text(re.compile("failed"), timeout=30_000)
    expect(page.locator("#job-error")).to_be_visible()
    assert page.evaluate(OVERFLOW) == []

    # the list: the finished job's result links, the cancelled one marked
    page.goto("/jobs")
    scoring = page.locator("#jobs-table tbody tr").nth(1)
    expect(scoring.get_by_role("link", name="results CSV")).to_be_visible()
    expect(page.locator(f"#job-{training.rsplit('/', 1)[1]}")).to_contain_text("cancelled")
    page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)
    assert page.evaluate(OVERFLOW) == []
    assert not page.console_errors, page.console_errors
    leaving = [u for u in page.requests if not u.startswith((served, "data:", "blob:"))]
    assert not leaving, leaving
