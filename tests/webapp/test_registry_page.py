"""The registry page in a real browser, with accounts and CSRF on: an admin adds a trained
release from a zip, attaches it as the shadow candidate, live predictions are scored by it
too, the comparison shows them, one click promotes it, one click rolls back, and every step
is in the audit log; by keyboard where a form is filled, at 1366 px without sideways
scrolling, and nothing goes to the console or the network."""
from __future__ import annotations

import io
import json
import re
import shutil
import zipfile

import pytest

from pipelines.core import locations
from pipelines.core.versions import version_id
from tests.browser import browser, open_page, playwright_sync  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pages

ARTIFACTS = locations.artifacts_dir({})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app with accounts on, an admin, and a release as training would write it (the
    committed sensor release with a stricter threshold: a different version)."""
    from tests.conftest import serving
    from webapp import accounts, create_app
    from webapp.db import upgrade

    tmp = tmp_path_factory.mktemp("registry-page")
    url = f"sqlite:///{tmp / 't.sqlite'}"
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "on",
                      "MODEL_STORE": str(tmp / "store"), "LIVE_CHECK_SECONDS": 0.2})
    with app.app_context():
        accounts.create_user("ada", "admin", "correct-horse")
    trained = tmp / "out" / "sensor"
    shutil.copytree(ARTIFACTS / "sensor", trained)
    manifest = json.loads((trained / "xgboost" / "manifest.json").read_text())
    manifest["threshold"]["value"] = 0.93
    (trained / "xgboost" / "manifest.json").write_text(json.dumps(manifest))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(trained.rglob("*")):
            if path.is_file():
                archive.write(path, f"sensor/{path.relative_to(trained)}")
    with serving(app) as base:
        yield base, buffer.getvalue(), version_id(trained)


@pytest.fixture
def page(browser, served):
    yield from open_page(browser, served[0])


def status(page):
    return page.locator('.alert[role="status"], .alert[role="alert"]').first


def test_candidate_from_training_output_to_shadow_to_live_and_back(page, served):
    expect = playwright_sync.expect
    base, archive, candidate = served
    committed = version_id(ARTIFACTS / "sensor")
    page.goto("/registry")
    page.get_by_label("Name").fill("ada")
    page.get_by_label("Password").fill("correct-horse")
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(f"{base}/registry")
    sensor = page.locator("#registry-sensor")

    # an admin adds the trained release from a zip: a version, not live
    sensor.locator("summary", has_text="Add a trained release").click()
    sensor.get_by_label("Release archive").set_input_files(
        {"name": "sensor-release.zip", "mimeType": "application/zip", "buffer": archive})
    sensor.get_by_role("button", name="Add version").click()
    expect(status(page)).to_contain_text(f"version {candidate} added")
    expect(page.locator(f"#version-sensor-{candidate}")).to_contain_text("uploaded by ada")

    # attached as the shadow candidate, by keyboard
    page.get_by_label(f"Why attach {candidate} as shadow").fill("stricter, from lot 7 data")
    page.get_by_label(f"Why attach {candidate} as shadow").press("Enter")
    expect(status(page)).to_contain_text(f"version {candidate} is the shadow candidate")

    # live predictions are scored by it too
    page.goto("/sensor/")
    page.wait_for_load_state("load")
    page.get_by_role("button", name="Try a sample").click()
    page.locator("#row-count").wait_for()
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("200")
    for _ in range(100):  # the shadow thread stores its scores after the answer
        page.goto("/registry")
        runs = page.locator("#comparison-sensor tr", has_text="Runs scored").locator("td")
        if runs.count() and runs.first.inner_text().startswith("1 "):
            break
        page.wait_for_timeout(200)
    expect(page.locator("#comparison-sensor")).to_contain_text("Decisions that agree")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"the registry page scrolls sideways at 1366 px ({width} px wide)"

    # one click promotes it, one click rolls back
    page.get_by_label(f"Why promote {candidate}").fill("agrees on 200 wafers")
    page.get_by_role("button", name=f"Promote {candidate} to live").click()
    expect(status(page)).to_contain_text(f"version {candidate} is live (promoted from shadow)")
    expect(page.locator("#registry-sensor-title")).to_contain_text(candidate)
    page.get_by_label("Why roll sensor back").fill("alarms too quiet")
    page.get_by_role("button", name=f"Roll back to {committed}").click()
    expect(status(page)).to_contain_text(f"version {committed} is live")

    # every step audited, with who and why
    page.get_by_role("link", name="audit log").click()
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(4)
    texts = [re.sub(r"\s+", " ", t) for t in rows.all_inner_texts()]
    assert ["made live" in texts[0], "shadow detached" in texts[1], "made live" in texts[2],
            "shadow attached" in texts[3]] == [True] * 4
    assert all("ada" in t for t in texts) and "alarms too quiet" in texts[0]
    assert page.console_errors == []
    assert all(u.startswith(base) or u.startswith(("data:", "blob:")) for u in page.requests)
