"""Sensor detectors: supervised XGBoost and ExtraTrees, and an autoencoder trained on passing wafers."""
