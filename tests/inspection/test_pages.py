"""The inspection page in a real browser (Playwright + Debian's chromium): bring real photos,
review them, predict, move the threshold, filter, open one photo with the keyboard and change
the heatmap opacity, download every row and a heatmap, and try a bad file."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pipelines.inspection.examples import synthetic_parts
from tests.conftest import DATA_DIR
from tests.browser import base_url, browser, open_page, playwright_sync  # noqa: F401 (fixtures)
from tests.inspection.conftest import png

pytestmark = pytest.mark.pages

BOTTLE_TEST = DATA_DIR / "mvtec" / "bottle" / "test"


@pytest.fixture
def page(browser, base_url):
    yield from open_page(browser, base_url, height=900)


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    """Real files: a few MVTec AD bottle test photos (when the data is present), a grayscale
    generated part at another size, and an RGBA one."""
    files = []
    if BOTTLE_TEST.is_dir():
        for kind in ("good", "broken_large", "contamination"):
            files += sorted((BOTTLE_TEST / kind).glob("*.png"))[:1]
    part = synthetic_parts(1, 120, seed=9)[0].astype(np.uint8)
    for mode in ("L", "RGBA"):
        files.append(tmp_path / f"generated_{mode}.png")
        files[-1].write_bytes(png(part, mode))
    return files


def test_bring_review_predict_threshold_open_download_and_a_bad_file(page, base_url, photos,
                                                                      tmp_path):
    expect = playwright_sync.expect
    n = len(photos)
    page.goto("/inspection/")
    page.locator("#file-input").set_input_files([str(p) for p in photos])
    expect(page.locator("#check-summary")).to_contain_text("every photo is readable")
    expect(page.locator("#check-summary")).to_contain_text("converted or resized")
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(n)
    expect(page.locator("#review-gallery")).to_contain_text("converted from L to RGB")

    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text(str(n))
    cards = page.locator("#results-gallery li.gallery-card")
    expect(cards).to_have_count(n)
    assert cards.first.locator("img.photo-heat").get_attribute("src").startswith("data:image/png")
    expect(cards.first.locator(".card-score")).to_contain_text(" vs ")

    # the threshold: at 0 every photo is defective, far above none is
    page.locator("#threshold-number").fill("0")
    expect(page.locator("#card-flagged")).to_have_text(str(n))
    page.get_by_label("Defective only").check()
    expect(cards).to_have_count(n)
    expect(cards.first.locator(".decision-fault")).to_contain_text("defective")
    page.locator("#threshold-number").fill("100000")
    expect(page.locator("#card-flagged")).to_have_text("0")
    expect(page.locator("#results-gallery")).to_contain_text("No photos match")
    page.get_by_label("Defective only").uncheck()
    expect(cards).to_have_count(n)

    # the heatmap opacity slider reaches every card's overlay
    page.locator("#heat-opacity").fill("0.2")
    assert cards.first.locator("img.photo-heat").evaluate("e => e.style.opacity") == "0.2"

    # download every row through the server at the current threshold (nothing defective)
    with page.expect_download() as info:
        page.locator("#download-button").click()
    path = tmp_path / "results.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == n
    assert {r["file"] for r in rows} == {p.name for p in photos}
    assert all(r["verdict"] == "good" and r["is_anomaly"] == "False" for r in rows)
    converted = [r for r in rows if r["file"].startswith("generated_")]
    assert all("resized from 120 x 120" in r["notes"] for r in converted)

    # open a photo with the keyboard; its own opacity; download its heatmap
    page.locator("#threshold-reset").click()
    cards.first.locator("button").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#photo-view")
    expect(dialog).to_be_visible()
    expect(page.locator("#photo-view-title")).to_contain_text("score")
    page.locator("#photo-view-opacity").fill("0.9")
    assert page.locator("#photo-view-heat").evaluate("e => e.style.opacity") == "0.9"
    with page.expect_download() as info:
        page.locator("#photo-view-download").click()
    heat = tmp_path / "heat.png"
    info.value.save_as(heat)
    assert heat.read_bytes().startswith(b"\x89PNG")
    assert info.value.suggested_filename.endswith("_heatmap.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(cards.first.locator("button")).to_be_focused()

    # a bad file: the message names it, and the photos loaded before stay
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator("#file-input").set_input_files(str(bad))
    expect(page.locator("#load-error")).to_contain_text("scan.png")
    expect(page.locator("#load-error")).to_contain_text("still shown")
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(n)
    wrong = tmp_path / "notes.docx"
    wrong.write_bytes(b"hello")
    page.locator("#file-input").set_input_files(str(wrong))
    expect(page.locator("#load-error")).to_contain_text("not an accepted file")

    page.goto("/history")
    expect(page.locator("table tbody tr").first).to_contain_text("inspection")
    outside = [u for u in page.requests if not u.startswith((base_url + "/", "data:", "blob:"))]
    assert not outside
    assert all("400" in e for e in page.console_errors), page.console_errors


def test_sample_and_api_box(page, base_url):
    expect = playwright_sync.expect
    page.goto("/inspection/")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#review-gallery li.gallery-card").first).to_be_visible()
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#results-gallery li.gallery-card").first).to_be_visible()
    page.locator("#api summary").click()
    expect(page.locator("#curl-files")).to_contain_text(base_url + "/api/v1/inspection/predict")
    assert not page.console_errors, page.console_errors


def test_bad_files_among_several_are_listed_and_the_good_ones_scored(page, tmp_path):
    expect = playwright_sync.expect
    good = synthetic_parts(2, 96, seed=4).astype(np.uint8)
    files = [tmp_path / "part_1.png", tmp_path / "cut.png", tmp_path / "part_2.png"]
    files[0].write_bytes(png(good[0]))
    files[1].write_bytes(png(good[1])[:60])
    files[2].write_bytes(png(good[1]))
    page.goto("/inspection/")
    page.locator("#file-input").set_input_files([str(p) for p in files])
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(2)
    expect(page.locator("#load-error")).to_be_hidden()
    expect(page.locator("#check-summary")).to_contain_text("1 file left out")
    listed = page.locator("#check-rejected li")
    expect(listed).to_have_count(1)
    expect(listed.first).to_contain_text("cut.png")
    expect(page.locator("#check-rejected-title")).to_contain_text("1 file cannot be read")

    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("2")
    expect(page.locator("#results-gallery li.gallery-card")).to_have_count(2)
    expect(page.locator("#results-gallery")).not_to_contain_text("cut.png")
    expect(page.locator("#results-rejected li")).to_have_count(1)
    expect(page.locator("#results-rejected")).to_contain_text("1 file could not be read and is left out")
    assert not page.console_errors, page.console_errors
