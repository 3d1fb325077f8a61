"""Every real file in ``../shared/data`` through its module's check and predict, as a user sends it.

The files are found by walking the data folder, never from a list: a file added there is
tested without an edit here. Each data folder belongs to one module (``DATASETS``); a file in
it is either data that module accepts (a 200 and a results CSV with every row), one of the
sensor-fault batch files the README names as refused on purpose (a 400 that says why), or
documentation (a 4xx with a message, never a 500). Gzipped sensor files are sent unzipped,
as a user would (the sensor module takes CSV or .xlsx); the time-series module takes
``.gz`` itself. WM-811K's npz files hold ~50,000 maps, beyond one request's 1,000: they are
sent in the parts ``python -m pipelines.wafermap.split`` makes, as the README says.
"""
from __future__ import annotations

import csv
import gzip
import io
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from pipelines.wafermap.split import split_npz

# data folder -> the module whose data it is
DATASETS = {"secom": "sensor", "sensor_fault": "sensor", "cmapss": "timeseries",
            "wm811k": "wafermap", "mvtec": "inspection"}
# what each module reads from its folders (everything else there is documentation)
DATA_FILES = {"sensor": re.compile(r"\.csv(\.gz)?$"),
              "timeseries": re.compile(r"_FD\d+\.txt(\.gz)?$"),
              "wafermap": re.compile(r"\.npz$"), "inspection": re.compile(r"\.png$")}
# the sensor-fault course data's deliberately broken batch files (README, "Real data"):
# refused with a 400 whose message says what is wrong
REFUSED = {"Wafer_23012020_163456.csv.gz": "expected 590 sensor columns",
           "Wafer_24012020_150121.csv.gz": "without a name",
           "Wafer_25012020_142112.csv.gz": "is not a number"}
PREDICT = {"sensor": "/api/v1/sensor/predict", "timeseries": "/api/v1/timeseries/predict",
           "wafermap": "/api/v1/wafermap/predict", "inspection": "/api/v1/inspection/predict"}
CHECK = {m: f"/{m}/check" for m in PREDICT}
IMAGES_PER_REQUEST = 100


def walk(data_dir: Path) -> dict[str, list[Path]]:
    """Every file under the data folder, by module; files outside a known folder fail."""
    found: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(data_dir)
        if len(relative.parts) == 1:
            found["docs"].append(path)  # the folder's own README
            continue
        module = DATASETS.get(relative.parts[0])
        assert module, f"{relative}: a data folder no module claims; add it to DATASETS"
        found[module if DATA_FILES[module].search(path.name) else "docs"].append(path)
    return found


@pytest.fixture(scope="module")
def corpus(data_dir) -> dict[str, list[Path]]:
    found = walk(data_dir)
    for module in DATASETS.values():
        assert found[module], f"no {module} data found under {data_dir}"
    return found


def send(client, url: str, files: list[tuple[bytes, str]], query: str = ""):
    """Files posted as the pages post them; errors come back as JSON."""
    return client.post(url + query, data={"file": [(io.BytesIO(d), n) for d, n in files]},
                       content_type="multipart/form-data", headers={"Accept": "application/json"})


def csv_rows(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def data_rows(text: str) -> int:
    """Data rows of a CSV text: its non-blank lines after the header."""
    return sum(1 for line in text.splitlines()[1:] if line.strip())


def test_the_walk_finds_every_dataset_and_its_documentation(corpus):
    """The walk itself: the known folders and their documentation, nothing unclaimed."""
    names = {p.name for p in corpus["docs"]}
    assert {"README.md", "PROVENANCE.md", "readme_original.txt"} <= names
    assert len(corpus["sensor"]) >= 60 and len(corpus["inspection"]) >= 251
    assert all(p.name in names or p.suffix for p in corpus["docs"])


def test_every_sensor_file_is_checked_and_scored_with_every_row(client, corpus):
    refused_seen = set()
    for path in corpus["sensor"]:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode()
        name = path.name.removesuffix(".gz")
        check = send(client, CHECK["sensor"], [(text.encode(), name)])
        predict = send(client, PREDICT["sensor"], [(text.encode(), name)], "?format=csv")
        if path.name in REFUSED:
            refused_seen.add(path.name)
            for response in (check, predict):
                assert response.status_code == 400, (path.name, response.status_code)
                assert REFUSED[path.name] in response.get_json()["message"], path.name
            continue
        assert check.status_code == 200, (path.name, check.get_json())
        assert check.get_json()["n_rows"] == data_rows(text), path.name
        assert check.get_json()["csv"] is None, f"{path.name}: a plain comma file sent back"
        assert predict.status_code == 200, (path.name, predict.get_data()[:300])
        assert len(csv_rows(predict.data)) == data_rows(text), path.name
    assert refused_seen == set(REFUSED), "a refused file named in the README is gone"


def test_the_readme_names_the_refused_files_and_how_to_split_an_npz():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in REFUSED:
        assert name in readme, f"the README does not say {name} is refused"
    assert "python -m pipelines.wafermap.split" in readme


def test_every_cmapss_history_is_scored_with_every_row(client, corpus):
    for path in corpus["timeseries"]:
        raw = path.read_bytes()
        rows = sum(1 for line in gzip.decompress(raw).decode().splitlines() if line.strip())
        check = send(client, CHECK["timeseries"], [(raw, path.name)])
        assert check.status_code == 200, (path.name, check.get_json())
        assert check.get_json()["n_rows"] == rows
        predict = send(client, PREDICT["timeseries"], [(raw, path.name)], "?format=csv")
        assert predict.status_code == 200, (path.name, predict.get_data()[:300])
        assert len(csv_rows(predict.data)) == rows


def test_every_wm811k_map_is_scored_in_parts(client, corpus, app):
    limit = app.config["WAFERMAP_MAX_MAPS"]
    for path in corpus["wafermap"]:
        total = 0
        with np.load(path, allow_pickle=False) as npz:
            expected = len(npz["y"])
        for first, part in split_npz(path, limit):
            name = f"{path.stem}.from{first}.npz"
            check = send(client, CHECK["wafermap"], [(part, name)])
            assert check.status_code == 200, (name, check.get_json())
            predict = send(client, PREDICT["wafermap"], [(part, name)], "?format=csv")
            assert predict.status_code == 200, (name, predict.get_data()[:300])
            rows = csv_rows(predict.data)
            assert len(rows) == check.get_json()["n_maps"]
            assert all(r["label"] for r in rows), f"{name}: its labels are missing from the CSV"
            total += len(rows)
        assert total == expected, path.name


def test_every_mvtec_photo_is_checked_and_scored(client, corpus):
    for start in range(0, len(corpus["inspection"]), IMAGES_PER_REQUEST):
        paths = corpus["inspection"][start:start + IMAGES_PER_REQUEST]
        files = [(p.read_bytes(), "_".join(p.parts[-3:])) for p in paths]
        check = send(client, CHECK["inspection"], files)
        assert check.status_code == 200, check.get_json()
        assert check.get_json()["n_images"] == len(files)
        predict = send(client, PREDICT["inspection"], files, "?format=csv")
        assert predict.status_code == 200, predict.get_data()[:300]
        assert [r["file"] for r in csv_rows(predict.data)] == [n for _, n in files]


def test_documentation_files_are_refused_with_a_message(client, corpus, data_dir):
    """Each folder's notes, sent to that folder's module, get a clear 4xx, never a 500."""
    for path in corpus["docs"]:
        relative = path.relative_to(data_dir)
        module = DATASETS.get(relative.parts[0], "sensor") if len(relative.parts) > 1 \
            else "sensor"
        response = send(client, PREDICT[module], [(path.read_bytes(), path.name)])
        assert response.status_code in (400, 413, 415), (relative, response.status_code)
        assert response.get_json()["message"], relative
