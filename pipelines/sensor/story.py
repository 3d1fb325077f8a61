"""What the sensor release says about itself: the threshold's meaning, the headline figures.

Training and recalibration write the threshold section of a bundle manifest; this module
words it (:func:`threshold_note`) and picks the figures a page shows (:func:`headline`), so
the text lives in one place. Also the names of the module-level files that describe the
training rows (their format: :mod:`pipelines.core.rowhash`).
"""
from __future__ import annotations

PROFILE_FILE = "training_profile.json"
ROW_HASHES_FILE = "training_rows.npy"
ROW_KEYS_FILE = "training_row_keys.npz"
ROW_KEYS_ROLE = ("keys of the training rows (a few sensors' canonical hash), tested before the "
                 "row hash")
LATER_PROTOCOLS = {"time_split": "time split", "rolling_origin": "rolling origin"}
HEADLINE_KEYS = ("label", "optimistic", "roc_auc", "roc_auc_ci", "pr_auc", "pr_auc_ci",
                 "base_rate", "false_alarm_rate", "false_alarm_rate_ci", "recall", "recall_ci",
                 "n_rows", "n_fail", "protocol")


def later_period(metrics: dict[str, dict | None]) -> dict:
    """False-alarm rate and recall that thresholds set on earlier wafers met on later ones."""
    out = {}
    for key, m in metrics.items():
        if m is None:
            continue
        out[key] = {k: m[k] for k in ("false_alarm_rate", "false_alarm_rate_ci", "recall",
                                      "recall_ci") if k in m}
        out[key] |= {"wafers": m.get("n_rows"), "failing": m.get("n_fail"),
                     "protocol": LATER_PROTOCOLS.get(key, key)}
    return out


def threshold_note(section: dict) -> str:
    """One or two sentences: which data the false-alarm rate was measured on, what later data showed."""
    far = section["target_false_alarm_rate"]
    on = section.get("measured_on") or {}
    recalibrated = section.get("recalibrated")
    if recalibrated:
        data = recalibrated["data"]
        return (f"Set so that {far:.0%} of passing wafers are flagged, measured on the scores of "
                f"{on.get('passing_wafers')} passing wafers from {data['name']} (recalibrated "
                f"{recalibrated['at'][:10]}); it holds for wafers like those.")
    if not on:
        return f"Set so that {far:.0%} of passing wafers are flagged on the validation scores."
    period = f" of {on['period']}" if on.get("period") else ""
    text = (f"Set so that {far:.0%} of passing wafers are flagged, measured on {on['scores']} "
            f"over the {on['passing_wafers']:,} passing {on.get('data', 'training')} "
            f"wafers{period}.")
    later = section.get("later_period") or {}
    parts = [f"{v['false_alarm_rate']:.1%} of passing and {v['recall']:.0%} of {v['failing']} "
             f"failing wafers ({v['protocol']})" for v in later.values()
             if v.get("recall") is not None]
    if parts:
        text += (" Thresholds set the same way on earlier wafers flagged, on later ones, "
                 + "; ".join(parts) + ". Recalibrate on recent passing wafers.")
    return text


def headline(metrics: dict | None) -> dict:
    """Each protocol's headline figures with their intervals (JSON-safe, no machine paths)."""
    out = {}
    for key, m in (metrics or {}).items():
        if isinstance(m, dict):
            out[key] = {k: m[k] for k in HEADLINE_KEYS if k in m}
    return out


def score_meaning(role: str, metrics: dict | None) -> str:
    """One sentence for the page: what a model's score is, and for the autoencoder what it measured."""
    if role == "classifier":
        return ("A fault score from 0 to 1: higher means the wafer looks more like the failing "
                "wafers in training. It is not a calibrated probability (failing wafers are "
                "up-weighted in training); read it against the threshold.")
    figures = [f"{m['label']} ROC-AUC {m['roc_auc']:.2f}" for key, m in (metrics or {}).items()
               if key in ("cv", "time_split") and isinstance(m, dict) and "roc_auc" in m]
    measured = f" ({', '.join(figures)}; 0.5 is chance)" if figures else ""
    return ("How unusual the wafer's sensors look to an autoencoder trained on passing wafers "
            f"only. It barely separates failing from passing wafers{measured}, so it is not a "
            "fault predictor.")
