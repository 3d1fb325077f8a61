"""FabLens pipelines: ingestion, transformation, training, evaluation and prediction.

Pipeline code takes its inputs as arguments; it never reads Flask config or environment
variables (the composers in ``pipelines.train`` and ``pipelines.evaluate`` read the command line).
"""

__version__ = "0.1.0"
