"""Preprocessing shared by training and serving (fitted on training data only)."""
