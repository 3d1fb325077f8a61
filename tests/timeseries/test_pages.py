"""The time-series page in a real browser (Playwright + Debian's chromium): bring a real
C-MAPSS file, review what was read, predict, see the charts (plotly.js served by the app),
move the threshold, filter machines, download every row, try a bad file, and acknowledge
events on the events page (one, then the rest at once by keyboard)."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from pipelines.timeseries.ingest import find_data, read_cmapss, write_cmapss
from tests.browser import base_url, browser, open_page, playwright_sync  # noqa: F401 (fixtures)
from tests.conftest import DATA_DIR

pytestmark = pytest.mark.pages


@pytest.fixture
def page(browser, base_url):
    yield from open_page(browser, base_url, height=900)


@pytest.fixture
def real_file(tmp_path):
    """Four engines of train_FD001 (run to failure), cut short, in the C-MAPSS text layout."""
    try:
        series = read_cmapss(find_data(DATA_DIR))
    except FileNotFoundError:
        pytest.skip(f"no C-MAPSS data in {DATA_DIR}")
    rows = np.concatenate([idx for _, idx in series.groups()[:4]])
    path = tmp_path / "engines.txt"
    write_cmapss(path, series.machines[rows].astype(int), series.cycles[rows],
                 series.settings[rows], series.values[rows])
    return path, len(rows)


def test_bring_review_predict_chart_threshold_download_and_a_bad_file(page, base_url, real_file,
                                                                      tmp_path):
    expect = playwright_sync.expect
    path, n_rows = real_file
    page.goto("/timeseries/")
    page.locator("#file-input").set_input_files(str(path))
    expect(page.locator("#check-summary")).to_contain_text("time increases within every machine")
    expect(page.locator("#file-summary")).to_contain_text(f"{n_rows:,} rows, 4 machines")
    expect(page.locator("#machines-read-body tr")).to_have_count(4)

    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text(f"{n_rows:,}")
    expect(page.locator("#results-body tr")).to_have_count(4)
    # they are training engines: the page says so before anything else, and marks each
    expect(page.locator("#results-warning-list li")).to_contain_text("4 machines (1, 2, 3, 4)")
    expect(page.locator("#results-warning-list li")).to_contain_text("in-sample")
    expect(page.locator("#results-body .badge-insample")).to_have_count(4)
    # the charts: plotly.js from this app drew the three of them
    for chart in ("#chart-sensors", "#chart-score", "#chart-rul"):
        expect(page.locator(f"{chart} .main-svg").first).to_be_attached()
    expect(page.locator("#chart-score")).to_contain_text("threshold")
    # run-to-failure engines: each has flagged cycles at the default threshold
    flagged = int(page.locator("#card-flagged").inner_text().replace(",", ""))
    assert 0 < flagged < n_rows

    # pick another machine with the keyboard
    page.locator("#results-body button").nth(1).focus()
    page.keyboard.press("Enter")
    name = page.locator("#results-body button").nth(1).inner_text().strip()
    expect(page.locator("#ts-machine-name")).to_have_text(name)

    # choose sensors to chart
    page.locator("#ts-sensor-picks input").nth(5).check()

    # move the threshold: very high flags nothing, and the filter then shows no machine
    page.locator("#threshold-number").fill("1000")
    expect(page.locator("#card-flagged")).to_have_text("0")
    page.get_by_label("Machines with flags only").check()
    expect(page.locator("#results-body")).to_contain_text("No machines match")
    page.get_by_label("Machines with flags only").uncheck()
    page.locator("#threshold-reset").click()
    expect(page.locator("#card-flagged")).to_have_text(f"{flagged:,}")

    # download every row through the server at the current threshold
    with page.expect_download() as info:
        page.locator("#download-button").click()
    saved = tmp_path / "scores.csv"
    info.value.save_as(saved)
    rows = list(csv.DictReader(saved.open()))
    assert len(rows) == n_rows
    assert sum(r["is_anomaly"] == "True" for r in rows) == flagged

    # a bad file: the message names it and the row; the file loaded before stays
    bad = tmp_path / "broken.csv"
    bad.write_text("machine_id,cycle,sensor_2\nA,1,641.8\nA,2,oops\n")
    page.locator("#file-input").set_input_files(str(bad))
    expect(page.locator("#load-error")).to_contain_text("broken.csv")
    expect(page.locator("#load-error")).to_contain_text("row 2")
    expect(page.locator("#load-error")).to_contain_text("still shown")

    # events: one per machine per stretch of flagged cycles, not one per cycle; the page is in
    # the navigation; acknowledge one, then every other one at once with the keyboard
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    expect(page.locator("#events-count")).to_have_text(re.compile(r"^\d+ events?$"))
    n_events = int(page.locator("#events-count").inner_text().split()[0])
    assert 4 <= n_events < flagged  # each of the four engines has at least one stretch
    expect(page.locator("tbody")).to_contain_text(" cycles")
    expect(page.locator("tbody a", has_text="run ").first).to_have_attribute(
        "href", re.compile(r"^/history\?run=(\d+)#run-\1$"))
    page.get_by_role("button", name=re.compile(r"^Acknowledge event")).first.click()
    expect(page.locator("input.ev-select")).to_have_count(min(n_events, 50) - 1)
    # events.js shows "select all" once it runs: wait for it, or the key press may come first
    expect(page.locator("#ev-select-all")).to_be_visible()
    page.locator("#ev-select-all").focus()
    page.keyboard.press("Space")
    left = min(n_events, 50) - 1
    expect(page.locator("#ack-selected-count")).to_have_text(
        f"{left} event{'' if left == 1 else 's'} selected")
    page.locator("#ack-selected-button").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#events-notice")).to_have_text(
        f"{left} event{'' if left == 1 else 's'} acknowledged.")
    expect(page.locator("input.ev-select")).to_have_count(0)
    page.locator("#ev-ack").select_option("true")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#events-count")).to_contain_text(f"{min(n_events, 50)} event")

    outside = [u for u in page.requests if not u.startswith((base_url + "/", "data:", "blob:"))]
    assert not outside, outside
    assert all("400" in e for e in page.console_errors), page.console_errors


def test_sample_and_api_box(page, base_url):
    expect = playwright_sync.expect
    page.goto("/timeseries/")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#machines-read-body tr")).to_have_count(4)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#results-body tr")).to_have_count(4)
    expect(page.locator("#results-warnings")).to_be_hidden()  # generated engines: not in-sample
    page.locator("#api summary").click()
    expect(page.locator("#curl-json")).to_contain_text(base_url + "/api/v1/timeseries/detect")
    assert not page.console_errors, page.console_errors
