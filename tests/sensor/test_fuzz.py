"""Fuzz the sensor predict API with generated JSON bodies: never a 500 (issue 6).

Bodies mix wrong types, huge and non-finite numbers (written as the ``NaN``/``Infinity``
literals Python's JSON reader accepts), deep nesting, missing keys and random option values,
around mostly well-formed 590-value rows so the generator also reaches the scoring code.
The example count is bounded (``FABLENS_FUZZ_EXAMPLES``, default 150) to stay under 30 s.
"""
from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.sensor.schema import N_SENSORS, SENSOR_COLUMNS

PREDICT = "/api/v1/sensor/predict"
EXAMPLES = int(os.environ.get("FABLENS_FUZZ_EXAMPLES", "150"))

ODD_NUMBERS = st.sampled_from([1e39, -1e39, 3.5e38, 3.4e38, 1e308, -1e308, 5e-324, -0.0,
                               10**39, -(10**39), 10**400, 2**63, -(2**63) - 1])
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), ODD_NUMBERS)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=10))
ANY_JSON = st.recursive(
    SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def instance(draw):
    """A 590-value row with a few cells replaced, a sensor-keyed object, or any JSON."""
    kind = draw(st.sampled_from(["list", "list", "dict", "any"]))
    if kind == "any":
        return draw(ANY_JSON)
    if kind == "dict":
        keys = st.one_of(st.sampled_from(SENSOR_COLUMNS), st.sampled_from(["Sensr-1", "", "id"]))
        return draw(st.dictionaries(keys, st.one_of(NUMBERS, SCALARS, ANY_JSON), max_size=5))
    length = draw(st.sampled_from([N_SENSORS] * 6 + [0, 1, N_SENSORS - 1, N_SENSORS + 1]))
    row: list = [0.25] * length
    for _ in range(draw(st.integers(0, 3)) if length else 0):
        row[draw(st.integers(0, length - 1))] = draw(st.one_of(NUMBERS, SCALARS, ANY_JSON))
    return row


OPTIONS = {
    "instances": st.one_of(st.lists(instance(), max_size=3), ANY_JSON),
    "threshold": st.one_of(st.floats(0, 1), NUMBERS, ANY_JSON,
                           st.sampled_from(["0.5", "abc", "", "true", "nan", "-5"])),
    "model": st.one_of(st.sampled_from(["xgboost", "autoencoder", "", "magic"]), ANY_JSON),
    "ids": st.one_of(st.lists(st.one_of(st.text(max_size=6), st.integers()), max_size=4),
                     ANY_JSON),
}
BODIES = st.one_of(st.fixed_dictionaries({}, optional=OPTIONS), st.lists(instance(), max_size=2),
                   ANY_JSON)


def dumps(body) -> bytes:
    """JSON text with NaN and Infinity written as literals."""
    return json.dumps(body, allow_nan=True).encode()


@st.composite
def raw_bodies(draw) -> bytes:
    """Request bytes: a generated body, deep nesting, or a number with thousands of digits."""
    kind = draw(st.sampled_from(["body"] * 6 + ["deep", "digits"]))
    if kind == "deep":
        depth = draw(st.integers(1, 100_000))
        opener, middle, closer = draw(st.sampled_from([("[", "", "]"), ('{"a":', "1", "}")]))
        inner = opener * depth + middle + closer * depth
        key = draw(st.sampled_from(["instances", "threshold", "model", "ids"]))
        return f'{{"{key}": {inner}}}'.encode()
    if kind == "digits":
        digits = "9" * draw(st.integers(300, 6000))
        where = draw(st.sampled_from(["threshold", "cell"]))
        row = ",".join(["0.5"] * (N_SENSORS - 1) + [digits])
        return (f'{{"instances": [[{row}]]}}' if where == "cell"
                else f'{{"instances": [[{",".join(["0.5"] * N_SENSORS)}]], '
                     f'"threshold": {digits}}}').encode()
    return dumps(draw(BODIES))


def sketch(body: bytes, width: int = 150) -> bytes:
    """The start and end of a long body (the interesting part is often at the end)."""
    return body if len(body) <= 2 * width else body[:width] + b" ... " + body[-width:]


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(body=raw_bodies())
def test_generated_json_never_gets_a_500(client, body):
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert response.status_code < 500, (response.status_code, sketch(body))
    if response.status_code >= 400:
        answer = response.get_json(silent=True)
        assert isinstance(answer, dict) and {"error", "message", "problems"} <= set(answer), \
            response.data[:300]
        assert len(answer["message"]) < 300, (answer["message"][:300], sketch(body))
