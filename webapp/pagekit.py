"""The page kit's server side: what every module page receives, from one place.

Rules the page needs as well as the server (the numeric-cell pattern, the formula guard of
the results CSV, which files are CSV text, what a threshold means) are handed to the page
here, never rewritten in JS.
"""
from __future__ import annotations

from flask import current_app, render_template, url_for

from pipelines.core.problems import NUMBER_PATTERN
from webapp.registry import ModuleSpec
from webapp.uploads import BINARY_SIGNATURES, CSV_EXTENSIONS, SPREADSHEET_EXTENSIONS


def page_config(spec: ModuleSpec, predictor, **extra) -> dict:
    """The JSON config a module page script starts from (models, limits, rules, URLs).

    ``models`` holds the models that loaded; ``unavailable`` those whose bundle did not, with
    the reason (``Predictor.unavailable_models``), which the page states above the model
    choice instead of offering them."""
    return {
        "module": spec.name,
        "models": predictor.describe(),
        "default_model": predictor.default_model,
        "unavailable": predictor.unavailable_models(),
        "max_upload_mb": current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024),
        "max_rows": current_app.config["MAX_ROWS"],
        "number_pattern": NUMBER_PATTERN,
        "csv_extensions": list(CSV_EXTENSIONS),
        "spreadsheet_extensions": list(SPREADSHEET_EXTENSIONS),
        "binary_signatures": [list(signature) for signature in BINARY_SIGNATURES],
        "decision": {"below": spec.decision.below, "flag": spec.decision.flag},
        "predict_url": url_for(spec.predict),
        "api_url": url_for(spec.predict, _external=True),
        **extra,
    }


def render_module_page(spec: ModuleSpec, template: str, config: dict, *, item_label: str,
                       **context) -> str:
    """Render a module page (a template extending ``module_page.html``) from its config.

    ``item_label`` names what is scored on the summary cards ("Wafers").
    """
    return render_template(template, module=spec, config=config, item_label=item_label, **context)
