"""FabLens: find faults in manufacturing data (sensor, wafer map, time series, inspection)."""
import os
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
SERVE = [line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
         if line.strip() and not line.startswith("#")]
TRAIN = ["scikit-learn==1.9.1", "imbalanced-learn==0.14.2", "torch==2.13.0", "onnx==1.23.2",
         "onnxscript==0.7.2"]
# batch scoring on Dask (python -m pipelines.score): dask.dataframe for tables and histories,
# dask.bag for maps and photos, distributed for a LocalCluster or a scheduler by address;
# pyarrow for parquet in and out. Never imported by the web app (its 512 MiB budget).
SCALE = ["dask[dataframe]==2026.8.0", "distributed==2026.8.0", "pyarrow==26.0.1"]
DEV = TRAIN + SCALE + ["pytest==9.2.0", "pytest-xdist==3.8.0", "playwright==1.65.2",
             "hypothesis==6.170.15", "schemathesis==4.32.5"]


def shared_files(*folders: str) -> list[tuple[str, list[str]]]:
    """templates/, static/ and artifacts/ go to <prefix>/share/fablens/ in a regular install,
    where pipelines.core.locations finds them (a checkout uses them in place)."""
    out = []
    for folder in folders:
        for directory, _, files in os.walk(folder):
            if files:
                out.append((os.path.join("share", "fablens", directory),
                            sorted(os.path.join(directory, f) for f in files)))
    return out


setup(
    name="fablens",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["webapp", "webapp.*", "pipelines", "pipelines.*"]),
    package_data={"webapp.migrations": ["script.py.mako"]},
    data_files=shared_files("templates", "static", "artifacts"),
    install_requires=SERVE,
    # fablens worker (the job queue's worker), fablens db upgrade, ...: webapp/cli.py
    entry_points={"console_scripts": ["fablens=webapp.cli:main"]},
    extras_require={"train": TRAIN, "scale": SCALE, "dev": DEV},
)
