"""The wafer-map page in a real browser (Playwright + Debian's chromium): bring real files,
review the maps, predict, filter by class and by "needs review", move the level, open a map
and its saliency with the keyboard, download every row, and try a bad file."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from pipelines.wafermap.examples import PATTERNS, synthetic_map
from tests.conftest import DATA_DIR
from tests.browser import base_url, browser, open_page, playwright_sync  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pages

WM811K = DATA_DIR / "wm811k" / "wafer_maps_orig.npz"


@pytest.fixture
def page(browser, base_url):
    """A fresh 1366x900 page that records every request URL and every console error."""
    yield from open_page(browser, base_url, height=900)


def png_bytes(grid: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.array([0, 128, 255], np.uint8)[grid]).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def map_files(tmp_path) -> list[Path]:
    """Real files: a few WM-811K val maps rendered to PNG here (when the data is present),
    synthetic maps as PNGs, and a CSV batch of synthetic maps."""
    rng = np.random.default_rng(3)
    grids = [synthetic_map(PATTERNS[i % len(PATTERNS)], 28 + 3 * i, rng) for i in range(4)]
    if WM811K.is_file():
        from pipelines.wafermap.ingest import read_npz

        grids += read_npz(WM811K, split="val").maps[:3]
    files = []
    for i, grid in enumerate(grids):
        files.append(tmp_path / f"wafer_{i + 1:02d}.png")
        files[-1].write_bytes(png_bytes(grid))
    batch = tmp_path / "batch.csv"
    batch.write_text("\n".join("\n".join(",".join(map(str, r)) for r in
                                         synthetic_map(p, 32, rng).tolist()) + "\n"
                               for p in PATTERNS * 2))
    return files + [batch]


def test_bring_review_predict_filter_open_download_and_a_bad_file(page, base_url, map_files,
                                                                   tmp_path):
    expect = playwright_sync.expect
    n_maps = len(map_files) - 1 + 2 * len(PATTERNS)
    page.goto("/wafermap/")
    page.locator("#file-input").set_input_files([str(p) for p in map_files])
    expect(page.locator("#check-summary")).to_contain_text("every map is readable")
    expect(page.locator("#file-summary")).to_contain_text(f"{n_maps} maps")
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(n_maps)

    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text(str(n_maps))
    cards = page.locator("#results-gallery li.gallery-card")
    expect(cards).to_have_count(n_maps)
    first = cards.first
    expect(first.locator(".top3 li")).to_have_count(3)
    expect(first.locator(".card-class")).not_to_be_empty()
    expect(page.locator("#results-count")).to_contain_text(f"Showing all {n_maps} maps")

    # filter by class: the first card's class, then back to all
    cls = first.locator(".card-class").inner_text()
    page.locator("#class-filter").select_option(cls)
    shown = cards.count()
    assert 1 <= shown <= n_maps
    for k in range(shown):
        assert cards.nth(k).locator(".card-class").inner_text() == cls
    page.locator("#class-filter").select_option("")
    expect(cards).to_have_count(n_maps)

    # move the needs-review level: at 1 every map needs review, at 0 none does
    page.locator("#threshold-number").fill("1")
    expect(page.locator("#card-flagged")).to_have_text(str(n_maps))
    page.get_by_label("Needs review only").check()
    expect(cards).to_have_count(n_maps)
    expect(first.locator(".decision-fault")).to_contain_text("needs review")
    page.locator("#threshold-number").fill("0")
    expect(page.locator("#card-flagged")).to_have_text("0")
    expect(page.locator("#results-gallery")).to_contain_text("No maps match")
    page.locator("#threshold-number").fill("1")
    expect(cards).to_have_count(n_maps)

    # download every row through the server at the current level
    with page.expect_download() as info:
        page.locator("#download-button").click()
    path = tmp_path / "results.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == n_maps
    assert all(r["needs_review"] == "True" for r in rows)
    assert {r["name"] for r in rows} >= {"wafer_01.png", "batch.csv#1"}
    assert len([c for c in rows[0] if c.startswith("p_")]) == 9

    # open a map with the keyboard: its probabilities and the region behind the class
    page.get_by_label("Needs review only").uncheck()
    first.locator("button").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#map-view")
    expect(dialog).to_be_visible()
    expect(page.locator("#map-view-probs tr")).to_have_count(9)
    expect(page.locator("#map-view-status")).not_to_contain_text("Finding")
    expect(page.locator("#map-view-status")).not_to_contain_text("could not")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(first.locator("button")).to_be_focused()

    # a bad file: the message names it, and the maps loaded before stay
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator("#file-input").set_input_files(str(bad))
    expect(page.locator("#load-error")).to_contain_text("scan.png")
    expect(page.locator("#load-error")).to_contain_text("still shown")
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(n_maps)
    wrong = tmp_path / "notes.docx"
    wrong.write_bytes(b"hello")
    page.locator("#file-input").set_input_files(str(wrong))
    expect(page.locator("#load-error")).to_contain_text("not an accepted file")

    page.goto("/history")
    expect(page.locator("table tbody tr").first).to_contain_text("wafermap")
    outside = [u for u in page.requests if not u.startswith((base_url + "/", "data:", "blob:"))]
    assert not outside
    # the bad file's check answered 400 (the browser logs that); nothing else went wrong
    assert all("400" in e for e in page.console_errors), page.console_errors


def test_sample_api_box_and_keyboard_reach_the_controls(page, base_url):
    expect = playwright_sync.expect
    page.goto("/wafermap/")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(24)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("24")
    for control in ("#threshold-range", "#threshold-number", "#class-filter", "#results-search",
                    "#results-flagged-only"):
        label = page.locator(f'label[for="{control[1:]}"]')
        assert label.count() or page.locator(control).evaluate("e => !!e.closest('label')")
    page.locator("#results-search").fill("#3")
    expect(page.locator("#results-gallery li.gallery-card")).to_have_count(1)
    page.locator("#api summary").click()
    expect(page.locator("#curl-json")).to_contain_text(base_url + "/api/v1/wafermap/predict")
    page.get_by_role("button", name="Send the JSON example now").click()
    expect(page.locator("#api-response")).to_contain_text("HTTP 200")
    assert not page.console_errors, page.console_errors


def test_one_map_reads_in_the_singular_and_long_names_wrap_between_words(page, tmp_path):
    expect = playwright_sync.expect
    path = tmp_path / "LOT-A1234_wafer-07_2026-12-03_scan_final.png"
    path.write_bytes(png_bytes(synthetic_map("Center", 30, np.random.default_rng(3))))
    page.goto("/wafermap/")
    page.locator("#file-input").set_input_files(str(path))
    expect(page.locator("#file-summary")).to_have_text(f"{path.name}: 1 map.")
    name = page.locator("#review-gallery .card-name").first
    expect(name).to_have_text(path.name)
    # it breaks only after _ - . (each <wbr>), and nothing spills out of its card
    assert name.evaluate("el => el.querySelectorAll('wbr').length") == 9
    assert name.evaluate("el => el.scrollWidth <= el.clientWidth")
    lines = name.evaluate("""el => { const r = document.createRange(); r.selectNodeContents(el);
        return [...r.getClientRects()].length; }""")
    assert lines > 1  # too long for one line of a 150 px card: it wrapped


def test_bad_files_among_several_are_listed_and_the_good_ones_classified(page, tmp_path):
    expect = playwright_sync.expect
    rng = np.random.default_rng(5)
    files = [tmp_path / "good_1.png", tmp_path / "scan.png", tmp_path / "bad.csv",
             tmp_path / "good_2.png"]
    files[0].write_bytes(png_bytes(synthetic_map("Center", 30, rng)))
    files[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    files[2].write_text("0,1,1\n1,9,1\n")
    files[3].write_bytes(png_bytes(synthetic_map("Edge-Ring", 34, rng)))
    page.goto("/wafermap/")
    page.locator("#file-input").set_input_files([str(p) for p in files])
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(2)
    expect(page.locator("#load-error")).to_be_hidden()
    expect(page.locator("#check-summary")).to_contain_text("2 files left out")
    listed = page.locator("#check-rejected li")
    expect(listed).to_have_count(2)
    expect(listed.nth(0)).to_contain_text("scan.png: not a readable PNG or JPEG image")
    expect(listed.nth(1)).to_contain_text("bad.csv, row 2, column 2")
    expect(page.locator("#check-rejected-title")).to_contain_text("2 files cannot be read")

    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("2")
    expect(page.locator("#results-rejected li")).to_have_count(2)
    expect(page.locator("#results-rejected")).to_contain_text("left out of these results")
    expect(page.locator("#results-rejected li").nth(1)).to_contain_text("bad.csv")
    # a batch with nothing wrong shows no list; every file bad is refused with every reason
    page.locator("#file-input").set_input_files(str(files[0]))
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(1)
    expect(page.locator("#check-rejected")).to_be_hidden()
    page.locator("#file-input").set_input_files([str(files[1]), str(files[2])])
    expect(page.locator("#load-error")).to_contain_text("none of the 2 files")
    expect(page.locator("#load-error li")).to_have_count(2)
    assert all("400" in e for e in page.console_errors), page.console_errors


def test_a_labelled_batch_shows_accuracy_macro_f1_and_the_confusion_matrix(page, base_url,
                                                                          tmp_path):
    import json
    import urllib.request

    expect = playwright_sync.expect
    rng = np.random.default_rng(8)
    blocks, truth = [], ["Center", "Center", "Edge-Ring", "Donut", "none", "Center"]
    for k, label in enumerate(truth):
        grid = synthetic_map(label, 30 + 2 * k, rng)
        blocks.append((f"label,{label}\n" if k != 5 else "")
                      + "\n".join(",".join(map(str, r)) for r in grid.tolist()) + "\n")
    batch = tmp_path / "labelled.csv"
    batch.write_text("\n".join(blocks))
    # what the server says about the same file
    boundary = "fablensboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"labelled.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() \
        + batch.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base_url + "/api/v1/wafermap/predict", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request) as answer:
        labels = json.loads(answer.read())["labels"]
    assert labels["n_labelled"] == 5 and labels["n_unlabelled"] == 1

    page.goto("/wafermap/")
    page.locator("#file-input").set_input_files(str(batch))
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(6)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("6")
    panel = page.locator("#labels-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#labels-accuracy")).to_have_text(f"{100 * labels['accuracy']:.1f}%")
    expect(page.locator("#labels-macro-f1")).to_have_text(f"{labels['macro_f1']:.3f}")
    expect(page.locator("#labels-rates")).to_contain_text("5 labelled maps")
    expect(page.locator("#labels-rates")).to_contain_text("1 map without a label is left out")
    matrix = labels["confusion_matrix"]
    classes = labels["classes"]
    kept = [k for k in range(len(classes))
            if any(matrix[k]) or any(row[k] for row in matrix)]
    table = page.locator("#confusion")
    expect(table.locator("caption")).to_contain_text("true class (rows)")
    expect(table.locator("thead th[scope=col]")).to_have_count(len(kept))
    expect(table.locator("tbody th[scope=row]")).to_have_count(len(kept))
    # macro-F1 is the mean over the classes the batch mentions, not over all nine
    assert labels["macro_classes"] == len(kept) < len(classes)
    expect(page.locator("#labels-rates")).to_contain_text(f"(mean of the {len(kept)} classes")
    assert {"Center", "Edge-Ring", "Donut", "none"} <= {classes[k] for k in kept}
    for r, i in enumerate(kept):
        row = table.locator("tbody tr").nth(r)
        expect(row.locator("th")).to_have_text(f"True {classes[i]}")
        assert row.locator("td").all_inner_texts() == [str(matrix[i][j]) for j in kept]
    expect(table.locator("thead th").first).to_have_text(f"Predicted {classes[kept[0]]}")

    # a batch without labels: no panel
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#review-gallery li.gallery-card")).to_have_count(24)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("24")
    expect(panel).to_be_hidden()
    assert not page.console_errors, page.console_errors


def test_predict_while_the_server_still_checks_says_so_then_predicts(page, tmp_path):
    """Predict pressed during a slow check (the /check answer held back here) says the file is
    still being checked, not "load a file first"; once the check answers, Predict works."""
    expect = playwright_sync.expect
    path = tmp_path / "slow.png"
    path.write_bytes(png_bytes(synthetic_map("Center", 30, np.random.default_rng(5))))
    held = []
    page.route("**/wafermap/check*", lambda route: held.append(route))
    page.goto("/wafermap/")
    page.locator("#file-input").set_input_files(str(path))
    expect(page.locator("#load-status")).to_contain_text("Reading slow.png on the server")
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#predict-error")).to_contain_text(
        "The file is still being checked; Predict when it is loaded.")
    expect(page.locator("#predict-error")).not_to_contain_text("first")
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("#load-status")).to_have_text("Loaded slow.png: 1 map.")
    # a held prediction can be cancelled from its progress box; it carried the CSRF header
    predicts = []
    page.route("**/wafermap/predict*", lambda route: predicts.append(route))
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#predict-progress")).to_be_visible()
    expect(page.get_by_role("button", name="Predict", exact=True)).to_be_disabled()
    meta = page.locator('meta[name="csrf-token"]')
    if meta.count():
        assert predicts[0].request.headers.get("x-csrftoken") == meta.get_attribute("content")
    page.locator("#predict-cancel").click()
    expect(page.locator("#predict-progress")).to_be_hidden()
    expect(page.get_by_role("button", name="Predict", exact=True)).to_be_enabled()
    page.unroute("**/wafermap/predict*")
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#predict-error")).to_be_hidden()
    expect(page.locator("#card-scored")).to_have_text("1")
