"""Schemathesis against a live server: every documented operation, fed data generated from
/api/v1/openapi.json, never answers a 500, and answers what the document describes.

The app is served by werkzeug on 127.0.0.1 (as in tests/browser.py) with the TESTING config
and a temporary SQLite database; a few examples per operation, derandomized, keep it stable
and well under two minutes on two cores.
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error, response_schema_conformance  # noqa: E402

MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def live_url(tmp_path_factory):
    """The app on 127.0.0.1, a free port, for the whole module."""
    from tests.conftest import serving
    from webapp import create_app
    from webapp.db import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 't.sqlite'}"
    upgrade(url)
    with serving(create_app({"TESTING": True, "DATABASE_URL": url})) as base:
        yield base


def test_api_answers_as_documented(live_url):
    """Each operation in turn (schemathesis' own pytest plugin does not run under this
    pytest), every failure collected: the operation and what schemathesis found."""
    schema = schemathesis.openapi.from_url(f"{live_url}/api/v1/openapi.json")
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def run(case):
            case.call_and_validate(base_url=live_url, timeout=60,
                                   checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all reported
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
