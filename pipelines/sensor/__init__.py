"""Sensor module: one row of ~590 process-sensor readings per wafer; predict which wafers fail."""
from pipelines.core.modules import PipelineModule

MODULE = PipelineModule(
    name="sensor",
    detectors={"xgboost": "pipelines.sensor.detectors.xgboost:XGBoostDetector",
               "extra_trees": "pipelines.sensor.detectors.extra_trees:ExtraTreesDetector",
               "autoencoder": "pipelines.sensor.detectors.autoencoder:AutoencoderDetector"},
    cli="pipelines.sensor.cli",
    examples="pipelines.sensor.examples:detector_examples",
    batch="pipelines.sensor.batch",
)
