"""Wafer-map module: die pass/fail grids per wafer; classify the defect pattern (WM-811K's nine).

ingest (npz, PNG/JPEG, CSV grids, JSON arrays; see ``ingest`` for the accepted encodings),
transform (the resize that keeps every fail die), detectors/cnn (torch to train, ONNX to
serve), train, evaluate, predict (``WafermapPredictor``), examples (for the contract tests).
"""
from pipelines.core.modules import PipelineModule

MODULE = PipelineModule(
    name="wafermap",
    detectors={"cnn": "pipelines.wafermap.detectors.cnn:CNNDetector"},
    cli="pipelines.wafermap.cli",
    examples="pipelines.wafermap.examples:detector_examples",
    batch="pipelines.wafermap.batch",
)
