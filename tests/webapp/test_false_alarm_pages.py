"""One false-alarm figure per threshold, the same in every panel (Playwright + Debian's chromium).

The figure is the share of normal validation items a threshold flags, computed by the server
(``LoadedModel.false_alarm_rate``: measured at the default threshold, read off the same curve
elsewhere); the model panel, the threshold panel and the Models page all show that figure, and
the target the threshold was chosen for is named as a target.
"""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.locations import artifacts_dir
from pipelines.inspection.examples import synthetic_parts
from pipelines.inspection.predict import InspectionPredictor
from pipelines.timeseries.ingest import find_data, read_cmapss, write_cmapss
from pipelines.timeseries.predict import TimeseriesPredictor
from tests.browser import base_url, browser, open_page, playwright_sync  # noqa: F401 (fixtures)
from tests.conftest import DATA_DIR
from tests.inspection.conftest import png

pytestmark = pytest.mark.pages

ARTIFACTS = artifacts_dir({})


@pytest.fixture
def page(browser, base_url):
    yield from open_page(browser, base_url, height=900)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def test_time_series_model_and_threshold_panels_give_one_figure(page, tmp_path):
    try:
        series = read_cmapss(find_data(DATA_DIR))
    except FileNotFoundError:
        pytest.skip(f"no C-MAPSS data in {DATA_DIR}")
    rows = np.concatenate([idx for _, idx in series.groups()[:2]])
    path = tmp_path / "engines.txt"
    write_cmapss(path, series.machines[rows].astype(int), series.cycles[rows],
                 series.settings[rows], series.values[rows])
    model = TimeseriesPredictor(ARTIFACTS / "timeseries").get(None)  # xgboost_eol
    figure = pct(model.false_alarm_rate(model.threshold))

    expect = playwright_sync.expect
    page.goto("/timeseries/")
    expect(page.locator("#model-info")).to_contain_text(f"({figure} of healthy validation windows)")
    page.locator("#file-input").set_input_files(str(path))
    # Predict before the server's check is back only asks for a file (and the check then
    # clears that message): wait until the page says the file is loaded
    expect(page.locator("#load-status")).to_contain_text("Loaded", timeout=20_000)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#threshold-meaning")).to_contain_text(
        f"about {figure} of healthy validation windows", timeout=20_000)  # first predict: loads
    # another threshold: the page reads the server's curve, and says what the server says
    other = 0.6
    page.locator("#threshold-number").fill(str(other))
    expect(page.locator("#threshold-meaning")).to_contain_text(
        f"about {pct(model.false_alarm_rate(other))} of healthy validation windows")
    assert not page.console_errors


def test_inspection_model_and_threshold_panels_give_one_figure(page, tmp_path):
    model = InspectionPredictor(ARTIFACTS / "inspection").get(None)  # radial
    figure = pct(model.false_alarm_rate(model.threshold))
    assert figure != pct(model.target_far)  # 4.8% measured, 5.0% the target
    photo = tmp_path / "part.png"
    photo.write_bytes(png(synthetic_parts(1, 256, seed=4)[0].astype(np.uint8), "RGB"))

    expect = playwright_sync.expect
    page.goto("/inspection/")
    info = page.locator("#model-info")
    expect(info).to_contain_text(f"{figure} of held-out good photos")
    expect(info).to_contain_text(f"target {pct(model.target_far)}")
    page.locator("#file-input").set_input_files(str(photo))
    expect(page.locator("#load-status")).to_contain_text("Loaded", timeout=20_000)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#threshold-meaning")).to_contain_text(f"about {figure} score that high",
                                                               timeout=20_000)
    page.locator("#threshold-number").fill("3.0")
    expect(page.locator("#threshold-meaning")).to_contain_text(
        f"about {pct(model.false_alarm_rate(3.0))} score that high")
    assert not page.console_errors

