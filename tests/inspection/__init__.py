"""Inspection module tests."""
