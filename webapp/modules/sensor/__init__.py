"""Sensor module, web side: the page, its checks and samples, and the predict API."""
from __future__ import annotations

from pipelines.sensor.predict import SensorPredictor
from pipelines.sensor.samples import sensor_sample
from webapp.modules import ModuleExamples, ModuleSpec, UploadExample
from webapp.modules.sensor import api, batch, views

FORMULA_IDS = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "\tTAB", "W-6", "-7", "8"]


def examples(predictor: SensorPredictor) -> ModuleExamples:
    """A generated batch whose ids look like formulas (and numbers), and a non-CSV file."""
    frame = sensor_sample(predictor.sample_model, n_rows=len(FORMULA_IDS) * 5, seed=7)
    frame["Wafer"] = [f"{FORMULA_IDS[i % len(FORMULA_IDS)]}" for i in range(len(frame))]
    good = UploadExample("formula_ids.csv", frame.to_csv(index=False).encode(), n_rows=len(frame))
    bad = UploadExample("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, needle="not a CSV")
    return ModuleExamples(good=good, bad=bad)


MODULE = ModuleSpec(
    name="sensor",
    title="Sensor",
    blurb="One row of ~590 process-sensor readings per wafer: predict which wafers fail, "
          "and which sensors point to the cause.",
    blueprints=(views.bp, api.bp),
    predictor=SensorPredictor,
    page="sensor.page",
    predict="sensor_api.predict",
    examples=examples,
    batch=batch.score_file,
)
