"""FabLens: find faults in manufacturing data (sensor, wafer map, time series, inspection)."""
from pathlib import Path

from setuptools import find_packages, setup

SERVE = [line.strip() for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
         if line.strip() and not line.startswith("#")]
TRAIN = ["scikit-learn==1.9.1", "imbalanced-learn==0.14.2", "torch==2.13.0", "onnx==1.23.2",
         "onnxscript==0.7.2"]
DEV = TRAIN + ["pytest==9.2.0", "pytest-xdist==3.8.0", "playwright==1.65.2"]

setup(
    name="fablens",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["webapp", "webapp.*", "pipelines", "pipelines.*"]),
    install_requires=SERVE,
    extras_require={"train": TRAIN, "dev": DEV},
)
