"""Sensor loaders, one per source format, all mapping to ``pipelines.sensor.schema``."""
