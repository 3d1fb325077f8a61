"""Loaders, one per source format, all mapping to the schemas in ``pipelines.schema``."""
