"""Every page at 1366x768: nothing clipped or scrolling sideways, after a real prediction.

Each module page gets its sample predicted (so its results table is full), then History,
Events, Models, the registry and Jobs are opened with those runs in them (the Jobs pages with
jobs running and done: tests/webapp/test_jobs_page.py). A screenshot of each is kept under
pytest's temporary folder for a human look.
"""
from __future__ import annotations

import pytest

from tests.browser import base_url, browser, open_page, playwright_sync  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pages

MODULES = ["sensor", "wafermap", "timeseries", "inspection"]
OVERFLOW = """() => {
  const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth)
    out.push(`page ${document.documentElement.scrollWidth} px wide`);
  for (const box of document.querySelectorAll('.table-wrap, .results-wrap, main table')) {
    if (box.closest('[hidden]') || !box.offsetParent) continue;
    if (box.id === 'preview' || box.closest('#preview-wrap, .grid-wrap')) continue; // scrolls by design
    if (box.scrollWidth > box.clientWidth + 1)
      out.push(`${box.id || box.className || box.tagName}: ${box.scrollWidth} > ${box.clientWidth}`);
  }
  return out;
}"""


@pytest.fixture
def page(browser, base_url):
    yield from open_page(browser, base_url)


@pytest.mark.parametrize("module", MODULES)
def test_a_module_page_with_its_results_fits_1366_by_768(page, module, tmp_path):
    expect = playwright_sync.expect
    page.goto(f"/{module}/")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#load-status")).to_contain_text("Loaded", timeout=60_000)
    page.get_by_role("button", name="Predict", exact=True).click()
    results = page.locator("#results-gallery li" if module in ("wafermap", "inspection")
                           else "#results-body tr")
    expect(results.first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(tmp_path / f"{module}.png"), full_page=True)
    assert page.evaluate(OVERFLOW) == []
    assert not page.console_errors, page.console_errors


def test_history_events_and_models_fit_1366_by_768(page, tmp_path):
    expect = playwright_sync.expect
    page.goto("/timeseries/")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#load-status")).to_contain_text("Loaded", timeout=60_000)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#results-body tr").first).to_be_visible(timeout=60_000)
    for path in ("/history", "/history/events", "/models", "/registry", "/jobs"):
        page.goto(path)
        page.screenshot(path=str(tmp_path / f"{path.strip('/').replace('/', '_')}.png"), full_page=True)
        assert page.evaluate(OVERFLOW) == [], path
    assert not page.console_errors, page.console_errors
