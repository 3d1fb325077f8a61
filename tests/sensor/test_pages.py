"""Page tests in a real browser (Playwright + Debian's chromium).

The app runs in a background thread on 127.0.0.1 with the committed artifacts and a temporary
SQLite database. Run with ``pytest tests/test_pages.py``; select or skip with ``-m pages``.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import threading
from pathlib import Path

import pytest

from pipelines.sensor.schema import SENSOR_COLUMNS

pytestmark = pytest.mark.pages

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("FABLENS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOT = Path("/tmp/sensor_page.png")
TIMEOUT_MS = 20_000

if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
    # CI installs Debian's chromium through `make test`; there a missing browser is a failure.
    if os.environ.get("CI"):
        raise RuntimeError(f"no chromium at {CHROMIUM}: `make browser` should have installed it")
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The app served by werkzeug on 127.0.0.1, a free port, for the whole module."""
    from werkzeug.serving import make_server

    from webapp import create_app
    from webapp.db import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 't.sqlite'}"
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url):
    """A fresh 1366x768 page that records every request URL and every console error."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True,
                                  base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.requests = []
    page.console_errors = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    context.close()


def assert_local_only(page, base_url):
    outside = [u for u in page.requests if not (u.startswith(base_url + "/")
                                                or u.startswith(("data:", "blob:")))]
    assert not outside, f"requests left 127.0.0.1: {outside}"


def load_sample(page):
    page.goto("/sensor/")
    page.get_by_role("button", name="Try a sample").click()
    page.locator("#row-count").wait_for()
    return int(page.locator("#row-count").inner_text().split()[0].replace(",", ""))


def cell(page, row_index: int, column: int):
    """The preview cell of data row ``row_index`` (0-based in the table) and column index."""
    return page.locator(f'#preview tr[data-i="{row_index}"] > td[data-c="{column}"]')


def test_sample_edit_remove_predict_threshold_download(page, base_url, tmp_path):
    assert load_sample(page) == 200
    assert page.locator("#preview tbody tr").count() == 50  # one page only
    # all 590 sensor columns are there (aria-colcount), but only those near the view are rendered
    assert page.locator("#preview").get_attribute("aria-colcount") == str(1 + 1 + len(SENSOR_COLUMNS))
    assert page.locator("#preview thead th").count() < 100
    expect = playwright_sync.expect
    expect(page.locator("#check-summary")).to_contain_text("200 rows")

    # edit a cell on page 1; it survives going to page 2 and back, and stays marked
    target = cell(page, 3, 5)
    target.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("123.5")
    page.keyboard.press("Enter")
    expect(target).to_have_text("123.5")
    expect(target).to_have_class("is-edited")
    page.get_by_role("button", name="Next preview page").click()
    expect(page.locator('#preview tr[data-i="50"]')).to_be_visible()
    assert page.locator('#preview tr[data-i="3"]').count() == 0
    page.get_by_role("button", name="Previous preview page").click()
    expect(cell(page, 3, 5)).to_have_text("123.5")
    expect(cell(page, 3, 5)).to_have_class("is-edited")
    expect(page.locator("#file-summary")).to_contain_text("1 cell edited")

    # keyboard editing: Escape leaves a cell as it was, arrows move, Enter opens a cell
    original = cell(page, 0, 2).inner_text()
    cell(page, 0, 2).click()
    page.keyboard.type("999")
    page.keyboard.press("Escape")
    expect(cell(page, 0, 2)).to_have_text(original)
    expect(cell(page, 0, 2)).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(cell(page, 0, 3)).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.keyboard.press("End")  # the last column is rendered on demand
    expect(cell(page, 0, len(SENSOR_COLUMNS))).to_be_focused()
    page.keyboard.press("Home")
    expect(cell(page, 0, 0)).to_be_focused()
    expect(page.locator("#file-summary")).to_contain_text("1 cell edited")

    # remove a row: the count drops and the table renumbers nothing (file row numbers stay)
    removed_id = cell(page, 10, 0).inner_text()
    page.get_by_role("button", name=f"Remove row 11 ({removed_id})").click()
    expect(page.locator("#row-count")).to_have_text("199 rows")
    ids = page.locator("#preview tbody td.col-id").all_inner_texts()
    assert removed_id not in ids and len(ids) == 50

    # predict with the edited table
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#card-scored")).to_have_text("199")
    expect(page.locator("#predict-error")).to_be_hidden()
    flagged_default = int(page.locator("#card-flagged").inner_text())
    expect(page.locator("#threshold-meaning")).to_contain_text("of good wafers are flagged (validation data)")
    # flagged wafers first, each with an icon and the word FAULT
    rows = page.locator("#results-body tr")
    assert rows.count() == 50
    if flagged_default:
        expect(rows.first).to_have_class("is-fault")
        expect(rows.first.locator(".decision")).to_have_text("FAULT")
        assert rows.first.locator(".decision svg").count() == 1
    assert rows.first.locator(".bar").count() == 3

    # the threshold re-decides in the browser: no new request
    n_requests = len(page.requests)
    page.get_by_label("Threshold value").fill("0.25")
    expect(page.locator("#card-threshold")).to_have_text("0.2500")
    page.screenshot(path=str(SCREENSHOT))  # the results view at 1366x768
    page.get_by_label("Threshold value").fill("0")
    expect(page.locator("#card-flagged")).to_have_text("199")
    assert flagged_default != 199
    expect(page.locator("#threshold-meaning")).to_contain_text("about 100.0% of good wafers")
    expect(page.locator("#results-body tr").first.locator(".decision")).to_have_text("FAULT")
    expect(cell(page, 3, 5)).to_have_text("123.5")  # edits survive a threshold change
    assert len(page.requests) == n_requests

    # download every row, with the current threshold's decisions
    with page.expect_download() as info:
        page.get_by_role("button", name="Download results CSV").click()
    path = tmp_path / "results.csv"
    info.value.save_as(path)
    records = list(csv.reader(io.StringIO(path.read_text())))
    assert records[0] == ["id", "fault_probability", "anomaly_score", "is_fault", "threshold", "model",
                          "imputed_cells"] + [f"top_sensor_{k}{s}" for k in (1, 2, 3)
                                              for s in ("", "_contribution", "_value")]
    assert len(records) == 1 + 199
    assert {r[3] for r in records[1:]} == {"True"}
    assert removed_id not in {r[0] for r in records[1:]}
    assert len(page.requests) == n_requests

    # reset to default restores the server's decision count
    page.get_by_role("button", name="Reset to default").click()
    expect(page.locator("#card-flagged")).to_have_text(str(flagged_default))

    assert_local_only(page, base_url)
    assert not page.console_errors


def write_bad_csv(path: Path) -> Path:
    header = ["Wafer", *SENSOR_COLUMNS]
    rows = [["W-1", *["1.5"] * len(SENSOR_COLUMNS)], ["W-2", *["2.5"] * len(SENSOR_COLUMNS)]]
    rows[1][7] = "abc"  # row 2, column Sensor-7
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


def test_bad_file_lists_problems_and_non_csv_keeps_data(page, base_url, tmp_path):
    page.goto("/sensor/")
    expect = playwright_sync.expect
    page.get_by_label("Choose a CSV file").set_input_files(write_bad_csv(tmp_path / "bad.csv"))
    problems = page.locator("#problem-list li")
    expect(problems.first).to_contain_text("bad.csv, row 2, column Sensor-7")
    expect(problems.first).to_contain_text("'abc' is not a number")
    expect(page.locator("#row-count")).to_have_text("2 rows")
    bad_cell = cell(page, 1, 7)
    expect(bad_cell).to_have_class("is-problem")

    # predicting the unfixed table fails; the edits and the table stay
    cell(page, 0, 1).click()
    page.keyboard.press("Control+A")
    page.keyboard.type("7.25")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#predict-error")).to_contain_text("not a number")
    expect(cell(page, 0, 1)).to_have_text("7.25")
    expect(cell(page, 0, 1)).to_have_class("is-edited")

    # a non-CSV upload is refused and the loaded data stays
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.get_by_label("Choose a CSV file").set_input_files(png)
    expect(page.locator("#load-error")).to_be_visible()
    expect(page.locator("#load-error")).to_contain_text("picture.png: not a CSV file")
    expect(page.locator("#row-count")).to_have_text("2 rows")
    expect(page.locator("#file-summary")).to_contain_text("bad.csv")
    expect(cell(page, 0, 1)).to_have_text("7.25")

    # fixing the bad cell in the table lets the prediction through
    bad_cell.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    page.keyboard.press("Enter")
    expect(bad_cell).not_to_have_class("is-problem")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#card-scored")).to_have_text("2")
    assert_local_only(page, base_url)


def test_loading_over_unsaved_edits_asks_first(page, base_url, tmp_path):
    """UX.md: loading a sample or another file with unsaved edits asks first."""
    expect = playwright_sync.expect
    load_sample(page)
    cell(page, 0, 1).click()
    page.keyboard.press("Control+A")
    page.keyboard.type("42.5")
    page.keyboard.press("Enter")
    other = write_bad_csv(tmp_path / "other.csv")

    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.get_by_label("Choose a CSV file").set_input_files(other)
    expect(page.locator("#load-status")).to_contain_text("Kept fablens_sensor_sample.csv and your edits")
    assert asked and "lose your edits" in asked[0]
    expect(cell(page, 0, 1)).to_have_text("42.5")
    expect(page.locator("#row-count")).to_have_text("200 rows")

    page.once("dialog", lambda d: d.accept())
    page.get_by_label("Choose a CSV file").set_input_files(other)
    expect(page.locator("#row-count")).to_have_text("2 rows")
    expect(page.locator("#file-summary")).to_contain_text("other.csv")


def test_keyboard_reaches_controls_with_labels(page, base_url):
    page.goto("/sensor/")
    expect = playwright_sync.expect
    file_input = page.get_by_label("Choose a CSV file")
    sample = page.get_by_role("button", name="Try a sample")
    predict = page.get_by_role("button", name="Predict", exact=True)
    for control in (file_input, sample, predict):
        expect(control).to_have_count(1)

    def focused(locator) -> bool:
        return locator.evaluate("el => el === document.activeElement")

    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        for name, control in (("file", file_input), ("sample", sample), ("predict", predict)):
            if name not in reached and focused(control):
                reached.add(name)
                if name == "sample":  # Enter on the focused button loads the sample
                    page.keyboard.press("Enter")
                    page.locator("#row-count").wait_for()
        if len(reached) == 3:
            break
    assert reached == {"file", "sample", "predict"}

    # the first Tab from the top lands on the skip link
    page.goto("/sensor/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    # every form control on the page has an accessible name
    unnamed = page.evaluate("""() => [...document.querySelectorAll('input, select, button, textarea')]
        .filter(el => !el.closest('[hidden]'))
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
        .map(el => el.outerHTML.slice(0, 80))""")
    assert not unnamed


def test_pages_render_and_no_request_leaves_localhost(page, base_url):
    expect = playwright_sync.expect
    page.goto("/")
    expect(page.get_by_role("link", name="Sensor", exact=True).first).to_be_visible()
    expect(page.locator(".module-card")).to_have_count(4)
    expect(page.get_by_text("Coming soon")).to_have_count(3)

    load_sample(page)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("200")
    page.locator("#api summary").click()
    expect(page.locator("#curl-json")).to_contain_text(base_url + "/api/v1/sensor/predict")
    page.get_by_role("button", name="Send the JSON example now").click()
    expect(page.locator("#api-response")).to_contain_text("HTTP 200")

    page.get_by_role("link", name="History").click()
    expect(page.locator("table tbody tr").first).to_contain_text("sensor")

    page.goto("/no-such-page")
    expect(page.locator("h1")).to_contain_text("Not Found")
    assert_local_only(page, base_url)
    assert not page.console_errors or all("404" in e for e in page.console_errors)


def test_large_file_stays_responsive(page, base_url, tmp_path):
    """10,000 wafers x 591 columns: only one page of rows and the columns in view are in the DOM."""
    import urllib.request

    big = tmp_path / "big.csv"
    with urllib.request.urlopen(f"{base_url}/sensor/sample.csv?rows=10000", timeout=60) as r:
        big.write_bytes(r.read())
    expect = playwright_sync.expect
    page.goto("/sensor/")
    page.get_by_label("Choose a CSV file").set_input_files(big)
    expect(page.locator("#row-count")).to_have_text("10,000 rows", timeout=60_000)
    assert page.locator("#preview tbody td").count() < 50 * 60
    ms = page.evaluate("""() => {
        const next = document.querySelector('#preview-pager [data-go="next"]');
        const t0 = performance.now();
        for (let k = 0; k < 5; k++) { next.click(); document.getElementById('preview').offsetHeight; }
        return (performance.now() - t0) / 5;
    }""")
    assert ms < 400, f"a page of the preview took {ms:.0f} ms to render"

    # an edit on the last page survives jumping to page 1 and back; the far right column renders
    page.get_by_label("Page of the preview").fill("200")
    page.keyboard.press("Enter")
    target = cell(page, 9999, 4)
    target.click()
    page.keyboard.type("77")
    page.keyboard.press("Enter")
    page.get_by_label("Page of the preview").fill("1")
    page.keyboard.press("Enter")
    expect(cell(page, 0, 0)).to_have_text("Sample-1")
    page.locator("#preview-wrap").evaluate("w => { w.scrollLeft = w.scrollWidth; }")
    expect(page.locator("#preview thead th", has_text="Sensor-590")).to_have_count(1)
    page.get_by_label("Page of the preview").fill("200")
    page.keyboard.press("Enter")
    page.locator("#preview-wrap").evaluate("w => { w.scrollLeft = 0; }")
    expect(cell(page, 9999, 4)).to_have_text("77")
    expect(cell(page, 9999, 4)).to_have_class("is-edited")

    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("10,000", timeout=60_000)
    assert page.locator("#results-body tr").count() == 50
    assert_local_only(page, base_url)


CSV_CASES = [
    ('a,b\n1,"x,y"\n', [["a", "b"], ["1", "x,y"]]),
    ('"he said ""hi""",2\n', [['he said "hi"', "2"]]),
    ('"line1\nline2",3\n', [["line1\nline2", "3"]]),
    ("a,b\r\n1,2\r\n", [["a", "b"], ["1", "2"]]),
    ("a,b\n1,2", [["a", "b"], ["1", "2"]]),
    (",,\n", [["", "", ""]]),
    ("a,", [["a", ""]]),
    ("\ufeffWafer,Sensor-1\nW,1.5\n", [["Wafer", "Sensor-1"], ["W", "1.5"]]),
    ('"",x\n', [["", "x"]]),
]


def test_csv_parser_and_false_alarm_rate_in_browser(page):
    """The page's own parser, writer and threshold meaning, run in the browser."""
    import json

    import numpy as np

    page.goto("/sensor/")
    got = page.evaluate("""async (cases) => {
        const m = await import('/static/js/lib/csv.js');
        const parse = (text) => { const rows = []; m.parseCSV(text, (r) => rows.push(r)); return rows; };
        const out = cases.map(([text]) => parse(text));
        let unterminated = null;
        try { parse('a,"b\\n1,2'); } catch (err) { unterminated = err.message; }
        const values = ['plain', 'with,comma', 'with "quote"', 'multi\\nline', '', ' spaced '];
        const roundTrip = parse(values.map(m.csvField).join(',') + '\\n')[0];
        return {out, unterminated, roundTrip, values};
    }""", [list(c) for c in CSV_CASES])
    assert got["out"] == [expected for _, expected in CSV_CASES]
    assert "never closed" in got["unterminated"]
    assert got["roundTrip"] == got["values"]

    config = json.loads(page.locator("#page-config").text_content())
    model = next(m for m in config["models"] if m["name"] == config["default_model"])
    quantiles = model["far_curve"]["thresholds"]  # the manifest's normal-score quantiles
    assert len(quantiles) == 101
    thresholds = [-1.0, 0.0, 0.05, 0.2, model["threshold"], 0.6, 0.99, 2.0, quantiles[-1]]
    js = page.evaluate("""async ([curve, ts]) => {
        const m = await import('/static/js/lib/threshold.js');
        return ts.map((t) => m.falseAlarmRate(curve, t));
    }""", [model["far_curve"], thresholds])
    levels = np.linspace(0, 1, len(quantiles))
    expected = [1.0 - float(np.interp(t, quantiles, levels, left=0.0, right=1.0)) for t in thresholds]
    assert js == pytest.approx(expected, abs=1e-9)
