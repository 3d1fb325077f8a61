"""Active learning and annotation: the review queue of wafer maps and photos from past runs.

A wafer-map or inspection run keeps its least sure items (:mod:`webapp.annotation.capture`,
:mod:`webapp.annotation.kinds`); engineers label them one at a time by keyboard, in the order
the queue gives (least sure first, near-copies spread out); every label is a row with who and
when (:mod:`webapp.annotation.store`); disagreements are conflicts an engineer settles; the
labels go out and come back as COCO JSON (:mod:`webapp.annotation.coco`) and train a candidate
model (a job). The API and pages: :mod:`webapp.annotation.views`.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the review queue's API and pages."""
    from webapp.annotation import views

    app.register_blueprint(views.bp)
