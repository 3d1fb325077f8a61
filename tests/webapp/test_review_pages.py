"""The review pages in a real browser (Playwright + Debian's chromium): work through wafer maps
by keyboard (a digit picks the class, Enter confirms and moves on, arrows move), outline a
defect on a photo with a box, and read the queue's overview; at 1366 x 768, no sideways
scrolling, no console errors."""
from __future__ import annotations

import re

import pytest

from tests.browser import base_url, browser, open_page, playwright_sync  # noqa: F401 (fixtures)
from tests.conftest import DATA_DIR
from tests.wafermap.conftest import synthetic_maps

pytestmark = pytest.mark.pages

BOTTLE_TEST = DATA_DIR / "mvtec" / "bottle" / "test"


@pytest.fixture
def page(browser, base_url):
    yield from open_page(browser, base_url)


def no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def item_of(page, name: str, module: str = "wafermap") -> dict:
    listing = page.request.get(f"/api/v1/active-learning/queue?module={module}&state=all"
                               f"&limit=200").json()
    return next(i for i in listing["items"] if i["name"] == name)


def test_label_wafer_maps_by_keyboard(page):
    expect = playwright_sync.expect
    maps, _ = synthetic_maps(12, seed=21)
    answer = page.request.post("/api/v1/wafermap/predict", data={
        "maps": [g.tolist() for g in maps], "names": [f"KB-{k}" for k in range(12)]})
    assert answer.ok, answer.text()
    page.goto("/review/wafermap")
    expect(page.locator("#an-progress")).to_have_text("0 of 12 maps reviewed")
    expect(page.locator("#an-top3 li")).to_have_count(3)  # the live model's top 3
    first = page.locator("#an-name").inner_text()
    no_sideways_scroll(page)
    page.keyboard.press("4")  # Edge-Ring, the fourth class
    expect(page.locator('input[name="an-label"][value="Edge-Ring"]')).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.locator("#an-progress")).to_have_text("1 of 12 maps reviewed")
    expect(page.locator("#an-name")).not_to_have_text(first)  # moved on
    second = page.locator("#an-name").inner_text()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#an-name")).to_have_text(first)
    expect(page.locator("#an-history")).to_contain_text("Edge-Ring by local")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#an-name")).to_have_text(second)
    page.keyboard.press("9")
    page.keyboard.press("Enter")
    expect(page.locator("#an-progress")).to_have_text("2 of 12 maps reviewed")
    labelled = item_of(page, first)
    assert labelled["state"] == "annotated" and labelled["label"] == "Edge-Ring"
    assert item_of(page, second)["label"] == "none"
    # the keys reach every control too
    page.locator("#an-confirm").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "an-next"
    assert not page.console_errors, page.console_errors


@pytest.mark.skipif(not BOTTLE_TEST.is_dir(), reason="no MVTec AD bottle photos")
def test_outline_a_defect_on_a_photo_with_a_box(page):
    expect = playwright_sync.expect
    photos = sorted((BOTTLE_TEST / "broken_large").glob("*.png"))[:2]
    answer = page.request.post("/api/v1/inspection/predict", multipart={
        "file": {"name": "part-a.png", "mimeType": "image/png",
                 "buffer": photos[0].read_bytes()}})
    assert answer.ok, answer.text()
    page.goto("/review/inspection")
    expect(page.locator("#an-name")).to_have_text("part-a.png")
    page.wait_for_function("document.getElementById('an-heat').src.startsWith('data:image/png')")
    box = page.locator("#an-draw").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 80)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 160, steps=5)
    page.mouse.up()
    expect(page.locator("#an-regions")).to_contain_text("1 box around the defect")
    expect(page.locator('input[name="an-label"][value="defective"]')).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.locator("#an-progress")).to_contain_text("1 of 1 photos reviewed")
    item = page.request.get(f"/api/v1/active-learning/items/"
                            f"{item_of(page, 'part-a.png', 'inspection')['id']}").json()
    assert item["label"] == "defective"
    x, y, w, h = item["history"][-1]["boxes"][0]
    scale = 256 / box["width"]  # the drawing is shown larger than the photo
    assert x == pytest.approx(60 * scale, abs=2) and w == pytest.approx(80 * scale, abs=2)
    no_sideways_scroll(page)
    assert not page.console_errors, page.console_errors


def test_the_overview_lists_the_queue_and_the_measured_savings(page):
    expect = playwright_sync.expect
    maps, _ = synthetic_maps(5, seed=22)
    assert page.request.post("/api/v1/wafermap/predict", data={
        "maps": [g.tolist() for g in maps], "names": [f"OV-{k}" for k in range(5)]}).ok
    page.goto("/review?module=wafermap")
    expect(page.locator("#rq-next tbody tr")).not_to_have_count(0)
    expect(page.locator("#rq-next")).to_contain_text("OV-")
    expect(page.locator("#rq-progress-text")).to_contain_text("maps reviewed")
    expect(page.locator("#rq-conflicts")).to_contain_text("No conflicts")
    if page.locator("#rq-savings").count():  # a recorded simulation: its table and chart
        expect(page.locator("#rq-chart .main-svg").first).to_be_visible()
    no_sideways_scroll(page)
    page.get_by_role("link", name="Start reviewing").click()
    expect(page).to_have_url(re.compile(r"/review/wafermap$"))
    expect(page.locator("#an-progress")).to_contain_text("maps reviewed")
    assert not page.console_errors, page.console_errors
