"""The home page's dashboard in a real browser (Playwright + Debian's chromium): the charts are
drawn from the seeded runs by static/js/dashboard.js with plotly.js served by the app, a
module without runs shows its empty state, and nothing goes to the console or the network."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import update

from tests.browser import browser, open_page, playwright_sync  # noqa: F401 (fixtures)
from tests.conftest import serving, sqlite_url
from webapp import create_app, db
from webapp.db import upgrade

pytestmark = pytest.mark.pages


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The app with sensor runs on three days (one failed, with drift), served on loopback."""
    url = sqlite_url(tmp_path_factory.mktemp("dashboard-page"))
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    midnight = datetime.combine(datetime.now(timezone.utc).date(), time.min, tzinfo=timezone.utc)
    with app.test_request_context():
        for days_ago, rows, flagged, status, value in [(5, 40, 2, "ok", 0.04), (2, 60, 9, "ok", 0.31),
                                                       (2, 10, 10, "failed", None), (0, 25, 1, "ok", 0.12)]:
            drift = None if value is None else {"statistic": "share_outside_range", "value": value,
                                                "level": 0.25, "alert": value >= 0.25}
            run_id = db.record_run("sensor", "xgboost", "v1", "seed.csv", rows, flagged, 0.4,
                                   default_threshold=0.4, status=status, user="tester",
                                   drift=drift)
            with db.engine().begin() as conn:
                conn.execute(update(db.runs).where(db.runs.c.id == run_id).values(
                    created=midnight - timedelta(days=days_ago) + timedelta(hours=1)))
    with serving(app) as base:
        yield base


@pytest.fixture
def page(browser, base_url):
    yield from open_page(browser, base_url)


def test_home_page_draws_the_dashboard_charts(page, base_url):
    expect = playwright_sync.expect
    page.goto("/?days=7")
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready")
    sensor = page.locator("#dash-sensor")
    expect(sensor.locator("#dash-sensor-runs .main-svg").first).to_be_visible()
    expect(sensor.locator("#dash-sensor-drift .main-svg").first).to_be_visible()
    assert sensor.locator("#dash-sensor-runs .trace.bars .point").count() == 7  # one bar a day
    assert sensor.locator("#dash-sensor-drift .scatterlayer .trace").first.locator(
        ".point").count() == 3  # the failed run's drift is not charted
    expect(sensor.locator('[data-part="totals"] .stat-value')).to_have_text("3")
    expect(sensor.locator('[data-part="headline"] .stat-value a')).to_have_attribute(
        "href", "/models#model-sensor-xgboost")
    expect(page.locator("#dash-wafermap [data-part='empty']")).to_be_visible()
    expect(page.locator("#dash-wafermap [data-part='empty']")).to_contain_text("No successful")
    expect(page.locator("#dash-wafermap [data-part='charts']")).to_be_hidden()
    # the range is a labelled select and a button, reached by keyboard
    page.get_by_label("Show the last").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Show")).to_be_focused()
    page.get_by_label("Show the last").select_option("30")
    page.get_by_role("button", name="Show").press("Enter")
    expect(page).to_have_url(f"{base_url}/?days=30")
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready")
    assert sensor.locator("#dash-sensor-runs .trace.bars .point").count() == 30
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"the page scrolls sideways at 1366 px ({width} px wide)"
    assert page.console_errors == []
    assert all(u.startswith(base_url) or u.startswith("data:") for u in page.requests)
