"""Detectors: one contract (fit / score / save / load) and a registry of implementations.

A new model is one new module plus one entry in ``REGISTRY``.
"""
from __future__ import annotations

from pipelines.detectors.base import Detector, UnknownDetectorError, get_detector_class

__all__ = ["Detector", "UnknownDetectorError", "get_detector_class"]
