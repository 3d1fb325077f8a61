"""Time-series module, web side: the page, the predict and detect APIs, samples."""
from __future__ import annotations

from pipelines.timeseries.examples import history_csv, synthetic_history
from pipelines.timeseries.predict import TimeseriesPredictor
from webapp.modules import ModuleExamples, ModuleSpec, ResultsDecision, UploadExample
from webapp.modules.timeseries import api, batch, views

FORMULA_IDS = ["=M1", "+M2", "-M3", "@M4", "-5"]


def examples(predictor: TimeseriesPredictor) -> ModuleExamples:
    """A CSV of machines named like formulas (and a number); a CSV whose cycles go back."""
    history = synthetic_history(predictor.scaler, len(FORMULA_IDS), seed=5, min_cycles=35,
                                max_cycles=45, ids=FORMULA_IDS)
    good = UploadExample("formula_machines.csv", history_csv(history).encode(),
                         n_rows=len(history["machine"]))
    lines = history_csv(synthetic_history(predictor.scaler, 1, seed=1, min_cycles=40,
                                          max_cycles=40)).splitlines()
    lines[5], lines[6] = lines[6], lines[5]  # cycle 5 after cycle 6
    bad = UploadExample("backwards.csv", ("\n".join(lines) + "\n").encode(),
                        needle="does not come after")
    return ModuleExamples(good=good, bad=bad)


MODULE = ModuleSpec(
    name="timeseries",
    title="Time series",
    blurb="Sensor histories per machine: flag abnormal behaviour and estimate remaining "
          "useful life.",
    blueprints=(views.bp, api.bp),
    predictor=TimeseriesPredictor,
    page="timeseries.page",
    predict="timeseries_api.predict",
    examples=examples,
    decision=ResultsDecision(flag="is_anomaly", threshold="threshold"),
    batch=batch.score_file,
)
