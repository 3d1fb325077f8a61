"""The pages with accounts on, in a real browser: sign in by keyboard, then every POST the page
scripts make (check, predict, the API box) carries the CSRF token, and nothing breaks the
Content-Security-Policy (a violation is a console error)."""
from __future__ import annotations

import pytest

from tests.browser import browser, open_page, playwright_sync  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pages


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    from tests.conftest import serving
    from webapp import accounts, create_app
    from webapp.db import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('signed-in') / 't.sqlite'}"
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "on"})
    assert app.config["WTF_CSRF_ENABLED"]
    with app.app_context():
        accounts.create_user("erin", "engineer", "correct-horse")
    with serving(app) as base:
        yield base


@pytest.fixture
def page(browser, base_url):
    yield from open_page(browser, base_url)


def test_sign_in_predict_and_sign_out(page, base_url):
    expect = playwright_sync.expect
    page.goto("/sensor/")
    expect(page).to_have_url(f"{base_url}/login?next=/sensor/")
    page.keyboard.type("erin")  # the name field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type("wrong-password")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_contain_text("do not match")
    page.get_by_label("Password").fill("correct-horse")
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(f"{base_url}/sensor/")
    expect(page.locator(".user-name")).to_contain_text("erin")
    # the URL changes before the page's scripts have run: a click then finds no handler
    page.wait_for_load_state("load")

    page.get_by_role("button", name="Try a sample").click()
    page.locator("#row-count").wait_for()
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).to_have_text("200")
    page.locator("#api summary").click()
    page.get_by_role("button", name="Send the JSON example now").click()
    expect(page.locator("#api-response")).to_contain_text("HTTP 200")

    page.goto("/wafermap/")
    page.get_by_role("button", name="Try a sample").click()
    expect(page.locator("#check-summary")).to_contain_text("every map is readable")
    page.get_by_role("button", name="Predict", exact=True).click()
    expect(page.locator("#card-scored")).not_to_be_empty()

    page.goto("/history")
    expect(page.locator("table tbody tr").first).to_contain_text("erin")
    page.goto("/history/events")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base_url}/login")
    page.goto("/history")
    expect(page).to_have_url(f"{base_url}/login?next=/history")
    assert not page.console_errors, page.console_errors
