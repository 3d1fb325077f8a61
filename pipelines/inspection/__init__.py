"""Inspection module: find and localise visual defects, trained on good parts only (MVTec AD).

ingest (MVTec AD folders, plain folders of good images, uploaded image bytes), transform
(rotation about the centre with the background filled in), synthetic (defects for tuning),
detectors/radial (per-ring Gaussian mixtures of fixed local features, rotation-invariant) and
detectors/autoencoder (the reconstruction-error baseline), both torch to fit and ONNX to
serve; train, evaluate, tune, predict (``InspectionPredictor``), examples (contract tests).
"""
from pipelines.core.modules import PipelineModule

MODULE = PipelineModule(
    name="inspection",
    detectors={"radial": "pipelines.inspection.detectors.radial:RadialGaussianDetector",
               "autoencoder": "pipelines.inspection.detectors.autoencoder:AutoencoderDetector"},
    cli="pipelines.inspection.cli",
    examples="pipelines.inspection.examples:detector_examples",
    batch="pipelines.inspection.batch",
)
