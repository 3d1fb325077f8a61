"""FabLens pipelines: a shared ``core`` and one sub-package per module (``sensor``, ...).

Pipeline steps take their inputs as arguments; they never read Flask config or environment
variables (only the command lines in ``pipelines.core.cli`` and the modules' ``cli`` do).
"""

__version__ = "0.1.0"
