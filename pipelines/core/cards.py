"""Model cards: what the Models page shows of one bundle, read from its manifests.

A card holds the data the model was trained on (name, content hash, counts, class counts),
every evaluation protocol's metrics with their 95% intervals where the evaluation recorded
them (``<metric>_ci`` beside the metric), the threshold with its false-alarm figure and the
target it was chosen for, and the versions. It is read from the manifest layout every module
writes (``training_data``, ``metrics``, ``threshold``, ``libraries``); a module's predictor adds
what only it knows (:meth:`pipelines.core.predictor.Predictor.card`). Readable names of
metrics and counts come from :data:`pipelines.core.metric_names.METRIC_LABELS`. No machine paths.
"""
from __future__ import annotations

from numbers import Number

from pipelines.core.metric_names import COUNT_LABELS, metric_label

# keys of a protocol block that are not metrics (texts, flags, details shown elsewhere)
NOT_METRICS = {"label", "optimistic", "protocol", "description", "seconds", "fit_seconds",
               "origins", "seeds", "seed", "per_class", "confusion_matrix", "kinds"}
PARITY_KEY = "torch_onnx_max_abs_diff"  # an export check, shown under Versions
# protocol keys without a label of their own
PROTOCOL_LABELS = {"val": "Validation", "cut": "cut like the test set", "test": "Test",
                   "cv": "Cross-validation"}


def _is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def _humanise(key: str) -> str:
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def data_card(reference: dict | None, noun: str) -> dict:
    """The training data: ``name``, ``file``, ``sha256`` (and what it hashes), ``counts``
    (sentences like "1,567 wafers") and ``class_counts`` ([{split, counts: [[class, n]]}])."""
    r = reference or {}
    card = {"name": r.get("name") or r.get("folder"), "file": r.get("file"), "sha256": None,
            "sha256_of": None, "counts": [], "class_counts": []}
    if r.get("sha256"):
        card["sha256"], card["sha256_of"] = r["sha256"], "the file"
    elif r.get("sha256_of_file_hashes"):
        card["sha256"] = r["sha256_of_file_hashes"]
        card["sha256_of"] = "every file's name and sha256, in order"
    rows = r.get("rows")
    if isinstance(rows, dict):
        card["counts"] += [f"{n:,} {noun} ({split})" for split, n in rows.items() if _is_number(n)]
    elif _is_number(rows):
        card["counts"].append(f"{rows:,} {noun}")
    if _is_number(r.get("engines")):
        card["counts"].append(f"{r['engines']:,} engines")
    if _is_number(r.get("images")):
        card["counts"].append(f"{r['images']:,} photos")
    if _is_number(r.get("fit_images")):
        card["counts"].append(f"{r['fit_images']:,} fitted on")
    if isinstance(r.get("val_images"), list):
        seed = f", split seed {r['split_seed']}" if "split_seed" in r else ""
        card["counts"].append(f"{len(r['val_images']):,} held out for the threshold and "
                              f"validation{seed}")
    subset = r.get("train_subset")
    if isinstance(subset, dict) and _is_number(subset.get("maps")):
        card["counts"].append(f"trained on a subset of {subset['maps']:,}")
    classes = r.get("class_counts") or {}
    if classes and all(isinstance(v, dict) for v in classes.values()):
        card["class_counts"] = [{"split": split, "counts": [[c, n] for c, n in counts.items()]}
                                for split, counts in classes.items()]
    elif classes:
        card["class_counts"] = [{"split": None, "counts": [[c, n] for c, n in classes.items()]}]
    return card


def _column(key: str, block: dict, noun: str, parent: str | None) -> list[dict]:
    label = block.get("label") or PROTOCOL_LABELS.get(key) or _humanise(key)
    if parent:
        label = f"{parent}, {label}"
    metrics, counts, nested = {}, [], []
    for k, v in block.items():
        if k in NOT_METRICS or k == PARITY_KEY or k.endswith(("_ci", "_std")):
            continue
        if isinstance(v, dict):
            nested.append((k, v))
        elif k == "n_rows" and _is_number(v):
            counts.insert(0, f"{v:,} {noun}")
        elif k in COUNT_LABELS and _is_number(v):
            if (k, v) not in (("n_test", block.get("n_rows")), ("n_test_fail", block.get("n_fail"))):
                counts.append(f"{v:,} {COUNT_LABELS[k]}")  # the test part, unless it is all
        elif _is_number(v):
            ci = block.get(f"{k}_ci")
            metrics[k] = {"label": metric_label(k), "value": float(v),
                          "ci": [float(ci[0]), float(ci[1])]
                          if isinstance(ci, (list, tuple)) and len(ci) == 2 else None}
        elif isinstance(v, list) and v and all(_is_number(x) for x in v):
            metrics[k] = {"label": metric_label(k), "series": [float(x) for x in v], "ci": None}
    per_class = block.get("per_class")
    column = {"key": key, "label": label, "counts": counts, "metrics": metrics,
              "protocol": block.get("protocol") or block.get("description"),
              "optimistic": bool(block.get("optimistic")),
              "per_class": [{"class": c, **{m: v.get(m) for m in ("precision", "recall", "f1",
                                                                   "support")}}
                            for c, v in per_class.items()] if isinstance(per_class, dict) else None}
    out = [column] if metrics else []
    for k, v in nested:
        out += _column(k, v, noun, label)
    return out


def protocol_columns(metrics: dict | None, noun: str) -> list[dict]:
    """One column per evaluation protocol (a nested protocol, like the time series' "cut",
    becomes its own column): ``label``, ``counts``, ``metrics`` ({key: {label, value, ci}}),
    ``protocol`` (how it was measured), ``optimistic``, ``per_class``."""
    columns = []
    for key, block in (metrics or {}).items():
        if isinstance(block, dict):
            columns += _column(key, block, noun, None)
    return columns


def metric_rows(columns: list[dict]) -> list[dict]:
    """The rows of the side-by-side table: every metric any column has, in first-seen order,
    with each column's cell (None where a protocol did not measure it)."""
    keys: list[str] = []
    for column in columns:
        keys += [k for k in column["metrics"] if k not in keys]
    return [{"key": k, "label": metric_label(k),
             "cells": [c["metrics"].get(k) for c in columns]} for k in keys]


def parity_checks(manifest: dict) -> list[dict]:
    """The export checks a bundle recorded (largest torch vs ONNX difference), wherever the
    manifest keeps them: ``[{"what", "value"}]``."""
    found = manifest.get(PARITY_KEY)
    if found is None:
        for block in (manifest.get("metrics") or {}).values():
            if isinstance(block, dict) and PARITY_KEY in block:
                found = block[PARITY_KEY]
    if _is_number(found):
        return [{"what": "scores", "value": float(found)}]
    if isinstance(found, dict):
        return [{"what": k, "value": float(v)} for k, v in found.items() if _is_number(v)]
    return []


def threshold_card(loaded, normal: str = "normal validation items") -> dict:
    """The threshold: ``value``, ``rule``, ``false_alarm_rate`` (the share of normal validation
    items it flags; ``measured`` says whether training measured it there or it is read off the
    stored score quantiles), ``target`` (the false-alarm rate it was chosen for; None when it
    was chosen otherwise, e.g. for the best F1), ``source`` and ``note``."""
    section = loaded.manifest.get("threshold") or {}
    chosen_otherwise = "selection" in section  # set for the best F1: its "target" is measured
    return {"kind": "false_alarm", "value": loaded.threshold, "of": normal,
            "rule": section.get("rule") or "flag when score >= threshold",
            "false_alarm_rate": loaded.false_alarm_rate(loaded.threshold),
            "measured": loaded.measured_far is not None,
            "target": None if chosen_otherwise else loaded.target_far,
            "source": section.get("source"), "note": section.get("note")}


def model_card(loaded, *, default: bool, noun: str, normal: str = "normal validation items",
               release: dict | None = None) -> dict:
    """The card of one loaded model (``LoadedModel``): see the module doc."""
    manifest = loaded.manifest
    metrics = manifest.get("metrics") or {}
    columns = protocol_columns(metrics, noun)
    return {
        "name": loaded.name, "model": manifest.get("model"), "role": loaded.role,
        "version": loaded.version, "default": default, "shown": loaded.shown,
        "created": manifest.get("created"), "git_commit": manifest.get("git_commit"),
        "libraries": manifest.get("libraries") or (release or {}).get("libraries") or {},
        "data": data_card(manifest.get("training_data") or (release or {}).get("training_data"),
                          noun),
        "columns": columns,
        "protocol_note": metrics.get("protocol") if isinstance(metrics.get("protocol"), str)
        else None,
        "threshold": threshold_card(loaded, normal) if "normal_score_quantiles"
        in (manifest.get("threshold") or {}) else None,
        "checks": parity_checks(manifest), "score_meaning": None, "notes": [],
    }
