"""Sensor detectors: supervised XGBoost and an autoencoder trained on passing wafers."""
