"""Page tests in a real browser (Playwright + Debian's chromium).

The app runs in a background thread on 127.0.0.1 with the committed artifacts and a temporary
SQLite database. Run with ``pytest tests/test_pages.py``; select or skip with ``-m pages``.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from pipelines.sensor.schema import SENSOR_COLUMNS
from tests.browser import base_url, browser, open_page, playwright_sync  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pages

SCREENSHOT = Path("/tmp/sensor_page.png")


@pytest.fixture
def page(browser, base_url):
    """A fresh 1366x768 page that records every request URL and every console error."""
    yield from open_page(browser, base_url)


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

    # predict with the edited table; the run records how many cells were edited and rows removed
    record_form_fields(page)
    page.get_by_role("button", name="Predict").click()
    fields = page.evaluate("window.sentFields")
    assert fields["edited_cells"] == "1" and fields["removed_rows"] == "1"
    assert fields["source_name"] == "fablens_sensor_sample.csv"
    expect(page.locator("#card-scored")).to_have_text("199")
    expect(page.locator("#predict-error")).to_be_hidden()
    flagged_default = int(page.locator("#card-flagged").inner_text())
    expect(page.locator("#threshold-meaning")).to_contain_text("of good wafers are flagged")
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

    # the download is written by the server (the run's results_url), decided at the current threshold
    link = page.get_by_role("link", name="Download results CSV")
    assert "threshold=0" in link.get_attribute("href")
    records = download_csv(page, link, tmp_path / "results.csv")
    header = records[0]
    assert {"id", "is_fault", "threshold"} <= set(header)
    assert default_model(page)["score"] in header and "top_sensor_1" in header
    assert len(records) == 1 + 199
    rows = [dict(zip(header, r)) for r in records[1:]]
    assert {r["is_fault"] for r in rows} == {"True"}
    assert {float(r["threshold"]) for r in rows} == {0.0}
    assert removed_id not in {r["id"] for r in rows}

    # reset to default restores the server's decision count; "flagged only" downloads just those
    page.get_by_role("button", name="Reset to default").click()
    expect(page.locator("#card-flagged")).to_have_text(str(flagged_default))
    flagged_rows = download_csv(page, page.get_by_role("link", name="Download flagged only"),
                                tmp_path / "flagged.csv")
    assert len(flagged_rows) == 1 + flagged_default
    assert {r[flagged_rows[0].index("is_fault")] for r in flagged_rows[1:]} <= {"True"}

    assert_local_only(page, base_url)
    assert not page.console_errors


def record_form_fields(page) -> None:
    """Keep the text fields of the next form the page posts in ``window.sentFields``."""
    page.evaluate("""() => {
        const send = XMLHttpRequest.prototype.send;
        XMLHttpRequest.prototype.send = function (body) {
            if (body instanceof FormData) {
                window.sentFields = Object.fromEntries([...body].filter(([, v]) => typeof v === "string"));
            }
            return send.call(this, body);
        };
    }""")


def default_model(page) -> dict:
    """The default model's entry of the page config."""
    import json

    config = json.loads(page.locator("#page-config").text_content())
    return next(m for m in config["models"] if m["name"] == config["default_model"])


def download_csv(page, link, path: Path) -> list[list[str]]:
    """Click a download link and read the file it saved."""
    with page.expect_download() as info:
        link.click()
    info.value.save_as(path)
    return list(csv.reader(io.StringIO(path.read_text())))


def write_bad_csv(path: Path) -> Path:
    header = ["Wafer", *SENSOR_COLUMNS]
    rows = [["W-1", *["1.5"] * len(SENSOR_COLUMNS)], ["W-2", *["2.5"] * len(SENSOR_COLUMNS)]]
    rows[1][7] = "abc"  # row 2, column Sensor-7
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


def test_bad_file_lists_problems_and_non_csv_keeps_data(page, base_url, tmp_path):
    page.goto("/sensor/")
    expect = playwright_sync.expect
    page.get_by_label("Choose a CSV").set_input_files(write_bad_csv(tmp_path / "bad.csv"))
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
    page.get_by_label("Choose a CSV").set_input_files(png)
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


def edit_cell(page, row_index: int, column: int, text: str) -> None:
    cell(page, row_index, column).click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def test_loading_over_unsaved_edits_asks_first(page, base_url, tmp_path):
    """UX.md: leaving the page, loading a sample or another file with unsaved edits asks first."""
    expect = playwright_sync.expect
    plan: list[bool] = []  # the answers to the next questions (True: accept)
    asked: list[tuple[str, str]] = []

    def answer(dialog):
        asked.append((dialog.type, dialog.message))
        if plan and plan.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()
    page.on("dialog", answer)

    # no edits yet: the sample loads again without a question
    load_sample(page)
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#load-status")).to_contain_text("Loaded fablens_sensor_sample.csv")
    assert not asked
    edit_cell(page, 0, 1, "42.5")
    other = write_bad_csv(tmp_path / "other.csv")

    # another file: declining keeps the table and the edits
    plan.append(False)
    page.get_by_label("Choose a CSV").set_input_files(other)
    expect(page.locator("#load-status")).to_contain_text("Kept fablens_sensor_sample.csv and your edits")
    assert [a[0] for a in asked] == ["confirm"] and "lose your edits" in asked[0][1]
    expect(cell(page, 0, 1)).to_have_text("42.5")
    expect(page.locator("#row-count")).to_have_text("200 rows")

    # the sample asks too, before fetching anything
    asked.clear()
    plan.append(False)
    n_requests = len(page.requests)
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#load-status")).to_contain_text("Kept fablens_sensor_sample.csv and your edits")
    assert [a[0] for a in asked] == ["confirm"] and "lose your edits" in asked[0][1]
    assert len(page.requests) == n_requests
    expect(cell(page, 0, 1)).to_have_text("42.5")

    # leaving the page asks (the browser's own question); staying keeps the edits
    asked.clear()
    plan.append(False)
    page.get_by_role("link", name="History").click()
    expect(page.locator("#file-summary")).to_contain_text("1 cell edited")
    page.wait_for_timeout(300)
    assert [a[0] for a in asked] == ["beforeunload"]
    assert page.url.endswith("/sensor/")
    expect(cell(page, 0, 1)).to_have_text("42.5")

    # accepting replaces the table; with no edits, nothing asks again
    asked.clear()
    plan.append(True)
    page.get_by_label("Choose a CSV").set_input_files(other)
    expect(page.locator("#row-count")).to_have_text("2 rows")
    expect(page.locator("#file-summary")).to_contain_text("other.csv")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#row-count")).to_have_text("200 rows")
    page.get_by_role("link", name="History").click()
    expect(page.locator("h1")).to_have_text("History")
    assert [a[0] for a in asked] == ["confirm"]


def test_keyboard_reaches_controls_with_labels(page, base_url):
    page.goto("/sensor/")
    expect = playwright_sync.expect
    file_input = page.get_by_label("Choose a CSV")
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


def test_a_row_is_removed_and_restored_by_keyboard_only(page, base_url):
    expect = playwright_sync.expect
    assert load_sample(page) == 200
    page.keyboard.press("Tab")
    while not page.evaluate("!!document.activeElement.closest('#preview')"):
        page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(":focus")).to_have_attribute("aria-label", "Remove row 2 (Sample-2)")
    page.keyboard.press("Enter")
    expect(page.locator("#row-count")).to_have_text("199 rows")
    expect(page.locator("#undo-text")).to_have_text("Removed row 2 (Sample-2).")
    page.locator("#undo-button").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#row-count")).to_have_text("200 rows")
    expect(page.locator(":focus")).to_have_attribute("aria-label", "Remove row 2 (Sample-2)")


def test_results_fit_1366_by_768_with_long_file_names(page, base_url, tmp_path):
    """A wafer batch file's source_file column and labels: no results column is clipped."""
    path = sample_with_columns(base_url, tmp_path / "Wafer_13012020_090817_batch.csv", 60,
                               "source_file", lambda k: f"wafer_1301202{k % 10}_090817.csv",
                               "Good/Bad", lambda k: 1 if k % 4 else -1)
    predict_file(page, path)
    page.locator("#results-table").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "results_1366.png"))
    wrap = page.evaluate("""() => { const w = document.querySelector('#results-table').parentElement;
        return [w.scrollWidth, w.clientWidth]; }""")
    assert wrap[0] <= wrap[1], f"the results table is {wrap[0]} px wide in a {wrap[1]} px box"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    # long names wrap at their separators, short ids stay whole
    name = page.locator("#results-body td.col-extra").first
    assert name.evaluate("el => el.querySelectorAll('wbr').length") >= 2


def test_pages_render_and_no_request_leaves_localhost(page, base_url):
    expect = playwright_sync.expect
    page.goto("/")
    expect(page.get_by_role("link", name="Sensor", exact=True).first).to_be_visible()
    expect(page.locator(".module-card")).to_have_count(4)
    from webapp.modules import registered

    planned = [spec for spec in registered() if not spec.ready]
    expect(page.get_by_text("Coming soon")).to_have_count(len(planned))

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
    page.get_by_label("Choose a CSV").set_input_files(big)
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

    # 10,000 results: sorting, searching and moving the threshold redraw one page, quickly
    timings = page.evaluate("""async () => {
        const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
        const time = async (act) => { const t0 = performance.now(); act(); await frame(); return performance.now() - t0; };
        const out = {};
        out.sort = await time(() => document.querySelector('#results-head button[data-sort="id"]').click());
        const search = document.getElementById('results-search');
        out.search = await time(() => { search.value = 'sample-99'; search.dispatchEvent(new Event('input')); });
        const range = document.getElementById('threshold-range');
        out.slider = await time(() => { range.value = '0.1'; range.dispatchEvent(new Event('input')); });
        out.rows = document.querySelectorAll('#results-body tr').length;
        return out;
    }""")
    assert timings["rows"] <= 50
    for what in ("sort", "search", "slider"):
        assert timings[what] < 400, f"{what} took {timings[what]:.0f} ms with 10,000 results"
    expect(page.locator("#results-count")).to_contain_text("Showing 111 of 10,000 wafers")
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


def test_the_page_decides_flags_with_the_servers_one_rule(page):
    """isFlagged (threshold.js) and pipelines.core.thresholds.flagged agree, both directions,
    and every module page is handed its direction by the server."""
    import json

    import numpy as np

    from pipelines.core.thresholds import flagged

    rng = np.random.default_rng(5)
    scores = [*rng.normal(size=40).round(3).tolist(), 0.5, -0.25]
    cases = [(t, below) for t in (-0.25, 0.0, 0.5, 1.5) for below in (False, True)]
    page.goto("/sensor/")
    js = page.evaluate("""async ([scores, cases]) => {
        const m = await import('/static/js/lib/threshold.js');
        return cases.map(([t, below]) => scores.map((s) => m.isFlagged(s, t, below)));
    }""", [scores, cases])
    assert js == [flagged(scores, t, below=below).tolist() for t, below in cases]
    for module, below in (("sensor", False), ("wafermap", True), ("timeseries", False),
                          ("inspection", False)):
        page.goto(f"/{module}/")
        assert json.loads(page.locator("#page-config").text_content())["decision"]["below"] is below


# -- issue 6: results people can work with -------------------------------------------------------

@pytest.fixture(scope="module")
def labelled_csv(base_url, tmp_path_factory) -> Path:
    """The 200-row sample with a lot column after the id and a Pass/Fail label (every 5th fails)."""
    return sample_with_columns(base_url, tmp_path_factory.mktemp("labelled") / "labelled.csv",
                               200, "lot", lambda k: f"L{k % 3}",
                               "Pass/Fail", lambda k: 1 if k % 5 == 0 else -1)


def sample_with_columns(base_url: str, path: Path, rows: int, extra: str, extra_value,
                        label: str, label_value) -> Path:
    """The server's ``rows``-row sample with an ``extra`` column after the id and a ``label``
    column last (their values from row index k), written to ``path``."""
    import urllib.request

    with urllib.request.urlopen(f"{base_url}/sensor/sample.csv?rows={rows}", timeout=60) as r:
        table = list(csv.reader(io.StringIO(r.read().decode())))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([table[0][0], extra, *table[0][1:], label])
    for k, row in enumerate(table[1:]):
        writer.writerow([row[0], extra_value(k), *row[1:], label_value(k)])
    path.write_text(out.getvalue())
    return path


def predict_file(page, path: Path) -> dict:
    """Load ``path`` on the sensor page, press Predict; the server's JSON answer."""
    page.goto("/sensor/")
    page.get_by_label("Choose a CSV").set_input_files(path)
    page.locator("#row-count").wait_for()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/sensor/predict")) as info:
        page.get_by_role("button", name="Predict", exact=True).click()
    page.locator("#results-body tr").first.wait_for()
    return info.value.json()


def result_ids(page) -> list[str]:
    return page.locator("#results-body td.item-id").evaluate_all(
        "tds => tds.map(td => (td.querySelector('button') ?? td).firstChild.textContent)")


def test_results_sort_filter_search_and_both_pagers(page, base_url, labelled_csv):
    expect = playwright_sync.expect
    resp = predict_file(page, labelled_csv)
    score = default_model(page)["score"]
    scores = {p["id"]: p[score] for p in resp["predictions"]}
    head = page.locator("#results-head")

    # first order: the deciding score, highest first (so flagged wafers first)
    shown = result_ids(page)
    assert len(shown) == 50
    assert shown == sorted(scores, key=lambda i: -scores[i])[:50]
    expect(head.locator("th[aria-sort]")).to_have_count(1)
    expect(head.locator("th[aria-sort='descending']")).to_contain_text("Fault" if "fault" in score else "")

    # sort by id with a click, then the other way with Enter on the focused header
    head.get_by_role("button", name="Wafer").click()
    expect(head.locator("th[aria-sort='ascending']")).to_contain_text("Wafer")
    assert result_ids(page)[:3] == ["Sample-1", "Sample-2", "Sample-3"]  # numbers inside ids sort as numbers
    expect(head.get_by_role("button", name="Wafer")).to_be_focused()
    page.keyboard.press("Enter")
    expect(head.locator("th[aria-sort='descending']")).to_contain_text("Wafer")
    assert result_ids(page)[0] == "Sample-200"
    # the extra column and the label are columns too
    head.get_by_role("button", name="lot").click()
    expect(page.locator("#results-body tr").first.locator("td.col-extra")).to_have_text("L0")
    head.get_by_role("button", name="Label").click()
    head.get_by_role("button", name="Label").click()
    expect(page.locator("#results-body tr").first.locator("td.col-label")).to_have_text("fail")

    # the header stays in view while the table scrolls
    assert head.locator("th").first.evaluate("th => getComputedStyle(th).position") == "sticky"

    # a pager above and below the table, kept in step
    page.get_by_role("button", name="Next results page, bottom").click()
    expect(page.get_by_label("Page of the results", exact=True)).to_have_value("2")
    expect(page.locator("#results-pager-range")).to_have_text("Wafers 51–100 of 200")
    expect(page.locator("#results-pager-bottom-range")).to_have_text("Wafers 51–100 of 200")

    # filter to flagged wafers: every row shown is flagged, and the count says so
    n_flagged = int(page.locator("#card-flagged").inner_text())
    page.get_by_label("Flagged only", exact=True).check()
    expect(page.locator("#results-count")).to_contain_text(f"Showing {n_flagged} of 200 wafers (flagged only)")
    rows = page.locator("#results-body tr")
    expect(rows).to_have_count(min(50, n_flagged) or 1)
    if n_flagged:
        assert rows.evaluate_all("trs => trs.every(tr => tr.classList.contains('is-fault'))")
    # moving the threshold changes which rows the filter keeps
    page.get_by_label("Threshold value").fill("0")
    expect(page.locator("#results-count")).to_contain_text("Showing 200 of 200 wafers (flagged only)")
    page.get_by_role("button", name="Reset to default").click()
    page.get_by_label("Flagged only", exact=True).uncheck()

    # search by id, case-insensitive, across every page
    page.get_by_label("Search by id").fill("sample-1")
    expected = [i for i in scores if "sample-1" in i.lower()]
    expect(page.locator("#results-count")).to_contain_text(f"Showing {len(expected)} of 200 wafers")
    assert all("sample-1" in i.lower() for i in result_ids(page))
    page.get_by_label("Search by id").fill("no-such-wafer")
    expect(page.locator("#results-body")).to_contain_text("No wafers match")
    page.get_by_label("Search by id").fill("")
    expect(page.locator("#results-count")).to_have_text("Showing all 200 wafers.")
    assert_local_only(page, base_url)
    assert not page.console_errors


def test_labels_give_a_confusion_matrix_that_follows_the_threshold(page, base_url, labelled_csv):
    expect = playwright_sync.expect
    resp = predict_file(page, labelled_csv)
    assert resp["labels"]["column"] == "Pass/Fail"
    score = default_model(page)["score"]

    def expected(t):
        preds = resp["predictions"]
        tp = sum(p["label"] == 1 and p[score] >= t for p in preds)
        fn = sum(p["label"] == 1 and p[score] < t for p in preds)
        fp = sum(p["label"] == 0 and p[score] >= t for p in preds)
        tn = sum(p["label"] == 0 and p[score] < t for p in preds)
        return tp, fn, fp, tn

    panel = page.locator("#labels-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("Pass/Fail")
    for t in (resp["threshold"], 0.15, 0.0):
        if t != resp["threshold"]:
            page.get_by_label("Threshold value").fill(str(t))
        tp, fn, fp, tn = expected(t)
        counts = page.locator("#confusion .cm-n").all_inner_texts()
        expect(page.locator("#confusion .cm-n").first).to_have_text(str(tp))
        assert [int(c) for c in page.locator("#confusion .cm-n").all_inner_texts()] == [tp, fp, fn, tn], counts
        shown = [float(page.locator(f"#{k}").inner_text().rstrip("%")) for k in ("catch-rate", "false-alarm-rate")]
        assert shown == pytest.approx([100 * tp / (tp + fn), 100 * fp / (fp + tn)], abs=0.051)
    assert tp + fn == 40 and fp + tn == 160
    expect(page.locator("#catch-rate")).to_have_text("100.0%")
    assert not page.console_errors


def test_a_file_without_labels_shows_no_matrix(page, base_url):
    load_sample(page)
    page.get_by_role("button", name="Predict", exact=True).click()
    page.locator("#results-body tr").first.wait_for()
    playwright_sync.expect(page.locator("#labels-panel")).to_be_hidden()


def test_wafer_view_against_the_training_range(page, base_url, labelled_csv):
    """Needs the page config's ``profile_url`` (the lead's server side)."""
    import json
    import urllib.request

    expect = playwright_sync.expect
    predict_file(page, labelled_csv)
    config = json.loads(page.locator("#page-config").text_content())
    assert config.get("profile_url"), "the page config has no profile_url yet"
    with urllib.request.urlopen(base_url + config["profile_url"], timeout=30) as r:
        profile = json.loads(r.read())

    opener = page.locator("#results-body .open-item").first
    wafer = result_ids(page)[0]
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Wafer {wafer}")
    expect(page.locator("#item-view-summary")).to_contain_text(f"of {len(profile['features'])} sensors")
    assert dialog.evaluate("d => d.contains(document.activeElement)")

    # the list matches the profile: values outside p01..p99 are listed as above/below
    n_out = int(page.locator("#item-view-summary strong").first.inner_text())
    expect(page.locator("#item-view-count")).to_have_text(f"{n_out} of {len(profile['features'])} sensors listed.")
    page.get_by_label("Only sensors outside the range").uncheck()
    expect(page.locator("#item-view-body tr")).to_have_count(len(profile["features"]))
    page.get_by_label("Find a sensor").fill("Sensor-59")
    row = page.locator("#item-view-body tr", has_text="Sensor-59")
    expect(row.first).to_be_visible()
    # sortable like the results
    page.locator("#item-view-head").get_by_role("button", name="Sensor").click()
    expect(page.locator("#item-view-head th[aria-sort='ascending']")).to_contain_text("Sensor")

    # Escape closes it and gives focus back to the wafer's button
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#results-body .open-item").first).to_be_focused()
    # the profile was fetched once, however often a wafer is opened
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    assert sum(u.endswith(config["profile_url"]) for u in page.requests) == 1
    assert_local_only(page, base_url)
    assert not page.console_errors


def test_drift_warnings_detected_and_in_sample_rows(page, base_url, labelled_csv):
    """``detected`` and ``warnings`` are on main; ``drift`` and ``in_sample`` need the model's side."""
    expect = playwright_sync.expect
    resp = predict_file(page, labelled_csv)
    expect(page.locator("#results-detected")).to_contain_text("comma-separated")
    expect(page.locator("#results-detected")).to_contain_text("lot")
    if resp["warnings"]:
        expect(page.locator("#results-warning-list li")).to_have_count(len(resp["warnings"]))
    assert "drift" in resp, "the predict response has no drift yet"
    drift = resp["drift"]
    expect(page.locator("#drift-panel")).to_be_visible()
    expect(page.locator("#drift-summary")).to_contain_text(f"{100 * drift['share_outside']:.1f}%")
    expect(page.locator("#drift-body tr")).to_have_count(len(drift["top_drifted"]))
    in_sample = [p["id"] for p in resp["predictions"] if p.get("in_sample")]
    assert "in_sample" in resp["predictions"][0], "the predictions carry no in_sample yet"
    if in_sample:
        expect(page.locator("#in-sample-note")).to_contain_text("in-sample")
        page.get_by_label("Search by id").fill(in_sample[0])
        expect(page.locator("#results-body .badge-insample").first).to_be_visible()
    else:
        expect(page.locator("#in-sample-note")).to_be_hidden()


def test_semicolon_file_is_loaded_from_the_servers_csv(page, base_url, tmp_path):
    """A semicolon / decimal-comma file is shown as the server normalised it (``csv`` of the check)."""
    expect = playwright_sync.expect
    header = ["Wafer", *SENSOR_COLUMNS]
    rows = [[f"00{k}", *[f"{k},5"] * len(SENSOR_COLUMNS)] for k in range(1, 4)]
    path = tmp_path / "semicolons.csv"
    path.write_text("\n".join(";".join(r) for r in [header, *rows]) + "\n")
    page.goto("/sensor/")
    page.get_by_label("Choose a CSV").set_input_files(path)
    expect(page.locator("#row-count")).to_have_text("3 rows")
    expect(cell(page, 0, 0)).to_have_text("001")  # ids kept as written
    expect(cell(page, 0, 1)).to_have_text("1.5")
    expect(page.locator("#check-detected")).to_contain_text("semicolon-separated")
    expect(page.locator("#check-detected")).to_contain_text("decimal comma")
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("3")


def test_xlsx_upload_is_accepted_and_previewed(page, base_url, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    expect = playwright_sync.expect
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Wafer", *SENSOR_COLUMNS])
    sheet.append(["W-7", *[2.5] * len(SENSOR_COLUMNS)])
    path = tmp_path / "wafers.xlsx"
    book.save(path)
    page.goto("/sensor/")
    assert ".xlsx" in page.locator("#file-input").get_attribute("accept")
    page.get_by_label("Choose a CSV").set_input_files(path)
    expect(page.locator("#row-count")).to_have_text("1 row")
    expect(cell(page, 0, 1)).to_have_text("2.5")
    expect(page.locator("#check-detected")).to_contain_text("Excel")
    record_form_fields(page)
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("1")
    assert page.evaluate("window.sentFields")["source_name"] == "wafers.xlsx"


def test_models_link_and_page(page, base_url):
    """Needs ``models_url`` in the page config and the lead's /models route."""
    import json

    expect = playwright_sync.expect
    page.goto("/sensor/")
    config = json.loads(page.locator("#page-config").text_content())
    shown = [m["name"] for m in config["models"] if m.get("shown", True)]
    options = page.locator("#model-select option").evaluate_all("os => os.map(o => o.value)")
    assert options == shown
    assert config.get("models_url"), "the page config has no models_url yet"
    link = page.locator("#models-link")
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("h1")).to_have_text("Models")
    # one card per sensor model (other modules' models have cards of their own)
    expect(page.locator('.model-card[id^="model-sensor-"]')).to_have_count(len(config["models"]))
    text = page.locator("main").inner_text()
    assert "/work/" not in text and "/home/" not in text and "artifacts/" not in text
    expect(page.locator(".metrics-table").first).to_be_visible()
    for m in config["models"]:
        expect(page.locator(f"#model-sensor-{m['name']}")).to_contain_text(m["version"])
    assert_local_only(page, base_url)
