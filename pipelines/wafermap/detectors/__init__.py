"""Wafer-map detectors."""
