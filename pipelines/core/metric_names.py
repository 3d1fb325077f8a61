"""Readable names of the metrics and counts a release records, for every page that shows one.

No scikit-learn here (unlike :mod:`pipelines.core.evaluation`, the training metrics): the
web app imports this to name metrics, and serving installs only requirements.txt.
"""
from __future__ import annotations

# What each metric key a release records is called on a page: the one list of readable names
# (the Models page, and anything else that shows a metric). A key missing here is shown
# humanised, and a test checks every key in the committed manifests is listed.
METRIC_LABELS = {
    "roc_auc": "ROC AUC", "roc_auc_pooled": "ROC AUC, pooled", "pr_auc": "PR AUC",
    "pr_auc_pooled": "PR AUC, pooled", "base_rate": "Base rate (share failing)",
    "recall": "Catch rate (recall)", "precision": "Precision", "f1": "F1",
    "balanced_accuracy": "Balanced accuracy", "false_alarm_rate": "False-alarm rate",
    "test_false_alarm_rate": "False-alarm rate on the test part", "brier": "Brier score",
    "accuracy": "Accuracy", "macro_f1": "Macro F1 (mean over classes)",
    "macro_classes": "Classes in the macro mean",
    "rmse": "RMSE", "mae": "MAE", "r2": "R²",
    "rul_rmse": "RUL RMSE (cycles)", "rul_mae": "RUL MAE (cycles)",
    "rul_nasa_score": "RUL NASA score (asymmetric; lower is better)",
    "rul_rmse_per_cut": "RUL RMSE per cut (cycles)",
    "rul_rmse_all_val_windows_capped": "RUL RMSE, every validation window (true RUL capped)",
    "image_auroc": "Image AUROC (defective vs good photo)",
    "pixel_auroc": "Pixel AUROC (defect pixels vs the rest)",
    "torch_onnx_max_abs_diff": "Largest difference, torch vs ONNX export",
    "ece": "Expected calibration error",
}
# the counts a protocol records: what each counts (shown beside the protocol's name)
COUNT_LABELS = {
    "n_fail": "failing", "n_train": "train", "n_test": "test", "n_test_fail": "failing in test",
    "n_folds": "folds", "n_repeats": "repeats", "n_days": "days", "n_lots": "lots",
    "windows": "windows", "anomalous": "anomalous", "cuts": "cuts", "rul_engines": "engine cuts for RUL",
    "good": "good", "defects": "with a synthetic defect", "defective": "defective",
    "images": "photos",
}


def metric_label(key: str) -> str:
    """The readable name of a metric key (see :data:`METRIC_LABELS`)."""
    return METRIC_LABELS.get(key) or key.replace("_", " ").capitalize()
