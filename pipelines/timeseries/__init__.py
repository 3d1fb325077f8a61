"""Time-series module: sensor histories per machine (NASA C-MAPSS FD001 and generic CSV).

ingest (C-MAPSS text layout, official test + RUL files, generic CSV with free column names),
split (training and validation engines),
transform (drop sensors that don't vary, z-score from training engines only, sliding windows,
window features: the same code trains and serves), detectors (Isolation Forest, XGBoost RUL
regressor, XGBoost end-of-life classifier, LSTM autoencoder, PatchTST-style forecaster),
train, selection (flag levels chosen out of fold on cut engines), evaluate, predict
(``TimeseriesPredictor``), examples (for the contract tests).
"""
from pipelines.core.modules import PipelineModule

MODULE = PipelineModule(
    name="timeseries",
    detectors={
        "isolation_forest": "pipelines.timeseries.detectors.isolation_forest:IsolationForestDetector",
        "xgboost_rul": "pipelines.timeseries.detectors.rul:XGBoostRULDetector",
        "xgboost_eol": "pipelines.timeseries.detectors.rul:XGBoostEOLDetector",
        "lstm_autoencoder": "pipelines.timeseries.detectors.lstm_ae:LSTMAutoencoderDetector",
        "patchtst": "pipelines.timeseries.detectors.patchtst:PatchTSTDetector",
    },
    cli="pipelines.timeseries.cli",
    examples="pipelines.timeseries.examples:detector_examples",
    batch="pipelines.timeseries.batch",
)
