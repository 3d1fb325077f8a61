"""Reading wafer maps: every format, and every kind of bad input refused with its location."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from pipelines.core.problems import SchemaError
from pipelines.wafermap.ingest import (MAX_SIDE, PALETTES, NpzMaps, read_csv_grid, read_image,
                                       read_json_maps, read_maps, read_npz, write_npz)

GRID = np.array([[0, 1, 1, 0],
                 [1, 2, 1, 1],
                 [1, 1, 2, 1],
                 [0, 1, 1, 0]], dtype=np.uint8)


def problems_of(excinfo) -> list[dict]:
    return [p.to_dict() for p in excinfo.value.problems]


def png(array: np.ndarray, mode: str | None, fmt: str = "PNG") -> bytes:
    """An encoded image of ``array`` (``mode`` None: the one Pillow infers, e.g. 16-bit grey)."""
    Image = pytest.importorskip("PIL.Image", reason="Pillow (requirements.txt) reads images")

    out = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array, mode)
    image.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


# -- npz ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["flat", "X"])
def test_npz_both_layouts_with_split(tmp_path, layout):
    maps = [GRID, GRID.T, np.ones((4, 4), np.uint8)]
    write_npz(tmp_path / "m.npz", maps, ["Loc", "Center", "none"], layout=layout,
              split=["train", "val", "val"])
    every = read_npz(tmp_path / "m.npz")
    assert len(every) == 3 and every.labels.tolist() == ["Loc", "Center", "none"]
    np.testing.assert_array_equal(every.maps[1], GRID.T)
    val = read_npz(tmp_path / "m.npz", split="val")
    assert val.labels.tolist() == ["Center", "none"] and val.names == ["m.npz#2", "m.npz#3"]


def test_npz_of_different_sizes_and_without_labels(tmp_path):
    maps = [GRID, np.ones((3, 7), np.uint8)]
    write_npz(tmp_path / "m.npz", maps)
    read = read_maps(tmp_path / "m.npz")
    assert read.labels is None and [m.shape for m in read.maps] == [(4, 4), (3, 7)]


def test_npz_problems_are_located_by_item(tmp_path):
    bad = GRID.copy()
    bad[2, 3] = 5
    write_npz(tmp_path / "m.npz", [GRID, bad, np.zeros((4, 4), np.uint8)], layout="flat")
    with pytest.raises(SchemaError) as excinfo:
        read_npz(tmp_path / "m.npz")
    found = problems_of(excinfo)
    assert {"file": "m.npz", "index": 2, "row": 3, "column": "4"}.items() <= found[0].items()
    assert "5 is not a die code" in found[0]["message"]
    assert any(p.get("index") == 3 and "entirely off-wafer" in p["message"] for p in found)


def test_npz_refuses_oversized_maps_from_the_header(tmp_path):
    np.savez(tmp_path / "big.npz", X=np.ones((1, MAX_SIDE + 1, 4), np.uint8))
    with pytest.raises(SchemaError, match="at most 512 x 512"):
        read_npz(tmp_path / "big.npz")
    np.savez(tmp_path / "many.npz", X=np.ones((5, 4, 4), np.uint8))
    with pytest.raises(SchemaError, match="at most 3 are accepted"):
        read_npz(tmp_path / "many.npz", max_maps=3)


def test_npz_bad_files(tmp_path):
    with pytest.raises(SchemaError, match="not a readable .npz"):
        read_npz(b"PK\x03\x04 not really a zip", "x.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(SchemaError, match="needs 'X'"):
        read_npz(tmp_path / "other.npz")
    write_npz(tmp_path / "m.npz", [GRID], ["Loc"])
    with pytest.raises(SchemaError, match="no 'split' array"):
        read_npz(tmp_path / "m.npz", split="test")
    np.savez(tmp_path / "labels.npz", X=GRID[None], y=np.array(["Blob"]))
    with pytest.raises(SchemaError, match="'Blob' is not one of"):
        read_npz(tmp_path / "labels.npz")


# -- npz read a chunk at a time (batch jobs) --------------------------------------------------------
@pytest.mark.parametrize("layout", ["flat", "X"])
def test_an_npz_read_in_chunks_gives_what_read_npz_gives(tmp_path, layout):
    rng = np.random.default_rng(1)
    maps = [rng.integers(1, 3, size=(6, 6) if layout == "X" else (4 + i % 5, 6)).astype(np.uint8)
            for i in range(23)]
    labels = [["Loc", "Center", "none"][i % 3] for i in range(23)]
    write_npz(tmp_path / "m.npz", maps, labels, layout=layout)
    whole = read_npz(tmp_path / "m.npz")
    reader = NpzMaps(tmp_path / "m.npz", "lot.npz")
    assert len(reader) == 23 and reader.labels.tolist() == labels  # from headers, small arrays
    parts = list(reader.chunks(maps=5))
    assert [len(p) for p in parts] == [5, 5, 5, 5, 3]
    assert all(np.array_equal(a, b) for a, b in zip([m for p in parts for m in p.maps],
                                                    whole.maps))
    assert [n for p in parts for n in p.names] == [f"lot.npz#{i + 1}" for i in range(23)]
    assert [lb for p in parts for lb in p.labels] == labels
    cells = list(reader.chunks(maps=100, cells=70))  # a chunk holds about 70 dies at most
    assert sum(len(p) for p in cells) == 23 and max(len(p) for p in cells) <= 2


@pytest.mark.parametrize("layout", ["flat", "X"])
def test_a_bad_map_in_a_later_chunk_is_located_in_the_file(tmp_path, layout):
    maps = [GRID.copy() for _ in range(12)]
    maps[9][2, 3] = 5
    write_npz(tmp_path / "m.npz", maps, layout=layout)
    chunks = NpzMaps(tmp_path / "m.npz").chunks(maps=4)
    assert len(next(chunks)) == 4 and len(next(chunks)) == 4
    with pytest.raises(SchemaError) as excinfo:
        next(chunks)
    assert {"file": "m.npz", "index": 10, "row": 3, "column": "4"}.items() \
        <= problems_of(excinfo)[0].items()


def test_an_npz_that_cannot_be_read_in_chunks_says_why(tmp_path):
    np.savez(tmp_path / "f.npz", X=np.asfortranarray(np.ones((3, 4, 4), np.uint8)))
    with pytest.raises(SchemaError, match="Fortran order"):
        list(NpzMaps(tmp_path / "f.npz").chunks())
    np.savez(tmp_path / "o.npz", data=np.ones(9, np.uint8), offsets=np.array([0, 4, 8]),
             orig_shape=np.array([[2, 2], [2, 2]]))
    with pytest.raises(SchemaError, match="'offsets' must rise from 0 to the length"):
        NpzMaps(tmp_path / "o.npz")
    with pytest.raises(SchemaError, match="needs 'X'"):
        np.savez(tmp_path / "other.npz", a=np.ones(3))
        NpzMaps(tmp_path / "other.npz")


# -- CSV ------------------------------------------------------------------------------------------
def csv_text(grid: np.ndarray) -> str:
    return "\n".join(",".join(str(v) for v in row) for row in grid) + "\n"


def test_csv_grid_one_and_several_maps():
    one = read_csv_grid(csv_text(GRID).encode(), "w.csv")
    np.testing.assert_array_equal(one.maps[0], GRID)
    assert one.names == ["w.csv"]
    two = read_csv_grid((csv_text(GRID) + "\n\n" + csv_text(GRID[:2])).encode(), "w.csv")
    assert [m.shape for m in two.maps] == [(4, 4), (2, 4)] and two.names[1] == "w.csv#2"


@pytest.mark.parametrize("text, needle, where", [
    ("0,1,1\n1,2\n", "2 cells in this row", {"row": 2}),
    ("0,1\n1,3\n", "'3' is not a die code", {"row": 2, "column": "2"}),
    ("0,1\n1, \n", "empty cell", {"row": 2, "column": "2"}),
    ("0,0\n0,0\n", "entirely off-wafer", {}),
    ("", "holds no map", {}),
    ("\n\n", "holds no map", {}),
])
def test_csv_bad_input_is_located(text, needle, where):
    with pytest.raises(SchemaError) as excinfo:
        read_csv_grid(text.encode(), "bad.csv")
    first = problems_of(excinfo)[0]
    assert needle in first["message"] and first["file"] == "bad.csv"
    assert where.items() <= first.items()


def test_csv_too_large_and_not_text():
    with pytest.raises(SchemaError, match="at most 512"):
        read_csv_grid(("1\n" * (MAX_SIDE + 1)).encode(), "tall.csv")
    with pytest.raises(SchemaError, match="at most 512"):
        read_csv_grid((",".join(["1"] * (MAX_SIDE + 1)) + "\n").encode(), "wide.csv")
    with pytest.raises(SchemaError, match="not UTF-8"):
        read_csv_grid(b"\xff\xfe1,2", "bin.csv")


# -- JSON -----------------------------------------------------------------------------------------
def test_json_single_list_and_object():
    assert read_json_maps(json.dumps(GRID.tolist()).encode(), "m.json").maps[0].shape == (4, 4)
    several = read_json_maps(json.dumps([GRID.tolist(), [[1, 2]]]).encode(), "m.json")
    assert len(several) == 2 and several.maps[1].tolist() == [[1, 2]]
    wrapped = read_json_maps({"maps": [GRID.tolist()]})
    assert len(wrapped) == 1


@pytest.mark.parametrize("document, needle, where", [
    ([[0, 1], [1]], "1 cells in this row", {"row": 2}),
    ([[[0, 1], [1, 7]]], "7 is not a die code", {"index": 1, "row": 2, "column": "2"}),
    ([[0, 1.5]], "1.5 is not a die code", {"row": 1, "column": "2"}),
    ([[0, True]], "true is not a die code", {"row": 1, "column": "2"}),
    ([[0, 0], [0, 0]], "entirely off-wafer", {}),
    ([], "at least one", {}),
    ([[]], "empty", {}),
    ({"grid": []}, "'maps' list", {}),
])
def test_json_bad_input_is_located(document, needle, where):
    with pytest.raises(SchemaError) as excinfo:
        read_json_maps(json.dumps(document).encode(), "bad.json")
    first = problems_of(excinfo)[0]
    assert needle in first["message"], first
    assert where.items() <= first.items()


def test_json_not_json_and_too_large():
    with pytest.raises(SchemaError, match="not valid JSON"):
        read_json_maps(b"{nope", "x.json")
    with pytest.raises(SchemaError, match="at most 512"):
        read_json_maps(json.dumps([[1]] * (MAX_SIDE + 1)).encode(), "x.json")


# -- images ---------------------------------------------------------------------------------------
def test_grey_levels_and_raw_codes():
    levels = np.array([0, 128, 255], np.uint8)[GRID]
    np.testing.assert_array_equal(read_image(png(levels, "L"), "g.png").maps[0], GRID)
    np.testing.assert_array_equal(read_image(png(GRID, "L"), "codes.png").maps[0], GRID)
    wide = np.array([0, 32768, 65535], np.uint16)[GRID]
    np.testing.assert_array_equal(read_image(png(wide, None), "g16.png").maps[0], GRID)
    np.testing.assert_array_equal(
        read_image(png(GRID.astype(np.uint16), None), "c16.png").maps[0], GRID)


@pytest.mark.parametrize("palette", sorted(PALETTES))
def test_palette_colours_png_and_jpeg(palette):
    colours = np.array(PALETTES[palette], np.uint8)
    exact = read_image(png(colours[GRID], "RGB"), "c.png")
    np.testing.assert_array_equal(exact.maps[0], GRID)
    big = np.kron(GRID, np.ones((8, 8), np.uint8))  # 8 x 8 pixels per die survive JPEG
    lossy = read_image(png(colours[big], "RGB", "JPEG"), "c.jpg").maps[0]
    np.testing.assert_array_equal(lossy[4::8, 4::8], GRID)


def test_transparent_pixels_are_off_wafer():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = np.array(PALETTES["fablens"], np.uint8)[np.where(GRID == 0, 1, GRID)]
    rgba[..., 3] = np.where(GRID == 0, 0, 255)
    np.testing.assert_array_equal(read_image(png(rgba, "RGBA"), "a.png").maps[0], GRID)


def test_bad_images():
    pytest.importorskip("PIL", reason="Pillow (requirements.txt) reads images")
    with pytest.raises(SchemaError, match="not a readable PNG or JPEG"):
        read_image(b"\x89PNG\r\n\x1a\n broken", "broken.png")
    with pytest.raises(SchemaError, match="entirely off-wafer"):
        read_image(png(np.zeros((5, 5), np.uint8), "L"), "black.png")
    noise = np.random.default_rng(0).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    with pytest.raises(SchemaError, match="match none of the accepted colours"):
        read_image(png(noise, "RGB"), "photo.png")
    with pytest.raises(SchemaError, match="at most 512 x 512"):
        read_image(png(np.ones((MAX_SIDE + 1, 2), np.uint8), "L"), "tall.png")
    from PIL import Image

    gif = io.BytesIO()
    Image.fromarray(GRID, "L").save(gif, "GIF")
    with pytest.raises(SchemaError, match="PNG or JPEG expected"):
        read_image(gif.getvalue(), "m.gif")


def test_read_maps_dispatches_by_extension_and_content():
    assert read_maps(csv_text(GRID).encode(), "w.csv").layout == "csv grid"
    assert read_maps(json.dumps(GRID.tolist()).encode(), "w.txt").layout == "json arrays"
    assert read_maps(png(GRID, "L"), "upload").layout == "image"
    with pytest.raises(SchemaError, match="not a wafer-map file"):
        read_maps(b"GIF89a...", "x.gif")


def test_npz_flat_layout_inconsistent_or_empty_maps(tmp_path):
    data = np.ones(10, np.uint8)
    np.savez(tmp_path / "ragged.npz", data=data, offsets=np.array([0, 4, 10]),
             orig_shape=np.array([[2, 2], [2, 2]]))
    with pytest.raises(SchemaError) as excinfo:
        read_npz(tmp_path / "ragged.npz")
    found = problems_of(excinfo)
    assert found[0]["index"] == 2 and "says 2 x 2 but 'offsets' give 6 cells" in found[0]["message"]
    np.savez(tmp_path / "empty.npz", data=data[:4], offsets=np.array([0, 4, 4]),
             orig_shape=np.array([[2, 2], [0, 3]]))
    with pytest.raises(SchemaError, match=r"item 2: the map is empty \(0 x 3\)"):
        read_npz(tmp_path / "empty.npz")
    np.savez(tmp_path / "short.npz", data=data, offsets=np.array([0, 4]),
             orig_shape=np.array([[2, 2], [2, 3]]))
    with pytest.raises(SchemaError, match="'offsets' must be 3 integers"):
        read_npz(tmp_path / "short.npz")
