"""Wafer-map module tests."""
