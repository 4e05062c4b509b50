"""Importing OME-Zarr HCS plates: microscope type ``ome-zarr`` and ``tm_add labels``.

Plates are written here with ome-zarr-py's metadata writers (NGFF 0.4 on
Zarr v2 and 0.5 on Zarr v3) and, for Fractal's layout (one stitched image
per well with a ``FOV_ROI_table``), with ngio. Every extracted plane is
compared with the source array it must come from, every site's grid position
with the field positions written, and imported labels with the source labels.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import zarr
from click.testing import CliRunner, Result
from helpers import microscope_file_rows, run_step, use_fast_password_hashing
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import (
    write_labels,
    write_multiscales_metadata,
    write_plate_metadata,
    write_well_metadata,
)

import tmlib.models as tm
from tmlib import registry, segmentations
from tmlib.cli.add import main as tm_add
from tmlib.errors import AlreadyExistsError, InvalidInputError
from tmlib.omezarr.read import open_plate, parse_well_path, read_plane

#: the database does not matter here
sqlite_only = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)

USER = "alice"
PLATE = "plate"
ACQ = "acq"
FORMATS = {"0.4": FormatV04(), "0.5": FormatV05()}
PIXEL_SIZE = 0.5
CHANNELS = ("DAPI", "GFP")


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


# ------------------------------------------------------------------ writing plates


def _channel(label: str) -> dict:
    window = {"min": 0, "max": 65535, "start": 0, "end": 65535}
    return {"label": label, "color": "FFFFFF", "window": window, "active": True}


def write_field(
    group: zarr.Group,
    data: np.ndarray,
    axes: str,
    version: str,
    translation: tuple[float, float] | None = None,
    channels: tuple[str, ...] = CHANNELS,
) -> None:
    """A one-level field image: array ``0`` with scale (and translation) and omero labels."""
    fmt = FORMATS[version]
    extra = {"dimension_names": list(axes)} if version == "0.5" else {}
    array = group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=data.shape, **extra)
    array[...] = data
    scale = [PIXEL_SIZE if a in "yx" else 1.0 for a in axes]
    transforms = [{"type": "scale", "scale": scale}]
    if translation is not None:
        shift = [dict(zip("yx", translation, strict=True)).get(a, 0.0) for a in axes]
        transforms.append({"type": "translation", "translation": shift})
    write_multiscales_metadata(
        group,
        [{"path": "0", "coordinateTransformations": transforms}],
        fmt=fmt,
        axes=list(axes),
        metadata={"omero": {"channels": [_channel(c) for c in channels]}},
    )


@dataclass
class Plate:
    """A plate on disk and the source arrays of its fields (by field path)."""

    path: Path
    version: str
    axes: str
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    #: field path -> grid (row, column) its translation puts it at
    cells: dict[str, tuple[int, int]] = field(default_factory=dict)


def write_plate(
    path: Path,
    version: str,
    wells: dict[str, list[str]],
    shape: tuple[int, ...] = (2, 2, 2, 12, 16),
    axes: str = "tczyx",
    positions: dict[str, tuple[int, int]] | None = None,
    dtype: type = np.uint16,
    with_labels: bool = False,
) -> Plate:
    """A plate of `wells` (``"B/03" -> field names``), random pixels.

    `positions` maps a field name to its grid (row, column): its translation
    is then row * height and column * width pixels in micrometres, as the
    exporter writes it; fields not in it get no translation.
    """
    fmt = FORMATS[version]
    rng = np.random.default_rng(len(wells) + len(shape))
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    rows = sorted({w.split("/")[0] for w in wells})
    columns = sorted({w.split("/")[1] for w in wells})
    write_plate_metadata(root, rows, columns, list(wells), fmt=fmt, name=path.stem)
    plate = Plate(path, version, axes)
    height, width = shape[-2:]
    for well, names in wells.items():
        group = root.require_group(well)
        write_well_metadata(group, list(names), fmt=fmt)
        for name in names:
            data = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)
            cell = (positions or {}).get(name)
            shift = None
            if cell is not None:
                shift = (cell[0] * height * PIXEL_SIZE, cell[1] * width * PIXEL_SIZE)
                plate.cells[f"{well}/{name}"] = cell
            image = group.require_group(name)
            write_field(image, data, axes, version, shift)
            plate.fields[f"{well}/{name}"] = data
            if with_labels:
                labels = blobs((height, width), seed=len(plate.labels))
                write_labels(labels, image, name="nuclei", axes="yx", fmt=fmt)
                plate.labels[f"{well}/{name}"] = labels
    return plate


def blobs(shape: tuple[int, int], seed: int, size: int = 4) -> np.ndarray:
    """Square objects with distinct labels, apart from each other and the border."""
    labels = np.zeros(shape, np.uint32)
    rng = np.random.default_rng(seed)
    label = 0
    for y in range(1, shape[0] - size, size + 2):
        for x in range(1, shape[1] - size, size + 2):
            label += int(rng.integers(1, 5))
            labels[y : y + size, x : x + size] = label
    return labels


GRID_2X2 = {"0": (0, 0), "1": (0, 1), "2": (1, 0), "3": (1, 1)}


# --------------------------------------------------------------- experiments


def new_experiment(name: str = "exp") -> int:
    with contextlib.suppress(AlreadyExistsError):
        registry.add_user(USER, "secret", f"{USER}@example.org")
    eid = registry.add_experiment(name, USER, microscope_type="ome-zarr", plate_format=96)
    registry.add_plate(eid, PLATE)
    registry.add_acquisition(eid, PLATE, ACQ)
    return eid


def convert(eid: int, **metaconfig: object) -> None:
    run_step(eid, "metaextract")
    run_step(eid, "metaconfig", **metaconfig)
    run_step(eid, "imextract")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(tm_add, list(args), prog_name="tm_add")


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@dataclass(frozen=True)
class Extracted:
    """An extracted plane: where it went and its pixels."""

    well: str
    y: int
    x: int
    channel: str
    tpoint: int
    zplane: int
    pixels: np.ndarray


def extracted(eid: int) -> list[Extracted]:
    with tm.utils.ExperimentSession(eid) as session:
        files = session.scalars(sa.select(tm.ChannelImageFile)).all()
        return [
            Extracted(
                f.site.well.name, f.site.y, f.site.x, f.channel.name, f.tpoint, f.zplane, f.get()
            )
            for f in files
        ]


def site_cells(eid: int) -> dict[str, set[tuple[int, int]]]:
    """Well name -> grid cells of its sites."""
    cells: dict[str, set[tuple[int, int]]] = {}
    with tm.utils.ExperimentSession(eid) as session:
        for site in session.scalars(sa.select(tm.Site)):
            cells.setdefault(site.well.name, set()).add((site.y, site.x))
    return cells


def site_ids(eid: int) -> dict[tuple[str, int, int], int]:
    with tm.utils.ExperimentSession(eid) as session:
        return {(s.well.name, s.y, s.x): s.id for s in session.scalars(sa.select(tm.Site))}


def source_plane(data: np.ndarray, axes: str, channel: int, t: int, z: int) -> np.ndarray:
    index = {"t": t, "c": channel, "z": z}
    return data[tuple(index[a] for a in axes[:-2])]


# ---------------------------------------------------------------------- tests


@sqlite_only
@pytest.mark.parametrize(("version", "copy"), [("0.4", True), ("0.5", False)])
def test_plate_of_fields_converts_to_the_source_planes(tmaps, tmp_path: Path, version, copy):
    plate = write_plate(
        tmp_path / "p.zarr", version, {"B/03": list(GRID_2X2), "C/05": list(GRID_2X2)},
        positions=GRID_2X2,
    )  # fmt: skip
    eid = new_experiment()
    result = registry.register_files(eid, PLATE, ACQ, plate.path, copy=copy)
    assert result.images == sorted(plate.fields)
    assert result.metadata == [".zattrs" if version == "0.4" else "zarr.json"]
    convert(eid)

    planes = extracted(eid)
    assert len(planes) == 8 * 2 * 2 * 2  # sites x t x c x z
    assert {p.channel for p in planes} == set(CHANNELS)
    by_cell = {(path[:4].replace("/", ""), *plate.cells[path]): path for path in plate.fields}
    for p in planes:
        data = plate.fields[by_cell[(p.well, p.y, p.x)]]
        expected = source_plane(data, plate.axes, CHANNELS.index(p.channel), p.tpoint, p.zplane)
        np.testing.assert_array_equal(p.pixels, expected)
    assert site_cells(eid) == {w: set(GRID_2X2.values()) for w in ("B03", "C05")}
    assert registry.pixel_size(eid) == PIXEL_SIZE


@sqlite_only
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_of_fields_become_an_object_type(tmaps, tmp_path: Path, version):
    plate = write_plate(
        tmp_path / "p.zarr", version, {"B/03": ["0", "1"]}, shape=(1, 24, 30), axes="cyx",
        positions={"0": (0, 0), "1": (0, 1)}, with_labels=True,
    )  # fmt: skip
    eid = new_experiment()
    registry.register_files(eid, PLATE, ACQ, plate.path)
    convert(eid)

    result = invoke("labels", "-e", str(eid), "-p", PLATE, "-a", ACQ)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    total = sum(len(np.unique(labels)) - 1 for labels in plate.labels.values())
    assert result.stdout.strip() == f"object type nuclei: {total} objects registered"
    with tm.utils.ExperimentSession(eid) as session:
        type_id = session.scalar(
            sa.select(tm.MapobjectType.id).where(tm.MapobjectType.name == "nuclei")
        )
    sites = site_ids(eid)
    for path, labels in plate.labels.items():
        site_id = sites[("B03", *plate.cells[path])]
        found = segmentations.get_segmentation(eid, type_id, site_id)
        np.testing.assert_array_equal(found, labels)
    # importing again replaces, it does not add
    assert invoke("labels", "-e", str(eid), "-p", PLATE, "-a", ACQ, "-n", "nuclei").exit_code == 0
    with tm.utils.ExperimentSession(eid) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(tm.Mapobject)) == total
    line = one_error_line(invoke("labels", "-e", str(eid), "-p", PLATE, "-a", ACQ, "-n", "cells"))
    assert "'cells'" in line and "nuclei" in line


FOV = (10, 15)  # height, width of one field of view in pixels
FOV_GRID = (2, 3)  # rows, columns of fields in each stitched well


def write_fractal_plate(path: Path, version: str, wells: list[tuple[str, str]]) -> dict:
    """Fractal's layout with ngio: one stitched image per well, its FOV_ROI_table and labels.

    Returns ``well name -> (image, labels)``; the image has axes czyx (one z).
    """
    import ngio
    from ngio import Roi, RoiTable

    plate = ngio.create_empty_plate(str(path), name="fractal", ngff_version=version)
    height, width = FOV[0] * FOV_GRID[0], FOV[1] * FOV_GRID[1]
    rng = np.random.default_rng(7)
    sources = {}
    for row, column in wells:
        image_path = plate.add_image(row, column, "0")  # ngio spells the column its way
        image = rng.integers(0, 255, size=(2, 1, height, width), dtype=np.uint8)
        container = ngio.create_ome_zarr_from_array(
            str(path / image_path), image, pixelsize=PIXEL_SIZE, axes_names="czyx",
            channels_meta=list(CHANNELS), levels=1, ngff_version=version, overwrite=True,
        )  # fmt: skip
        rois = [
            Roi.from_values(
                {
                    "y": (r * FOV[0] * PIXEL_SIZE, FOV[0] * PIXEL_SIZE),
                    "x": (c * FOV[1] * PIXEL_SIZE, FOV[1] * PIXEL_SIZE),
                },
                name=f"FOV_{r * FOV_GRID[1] + c + 1}",
            )  # fmt: skip
            for r in range(FOV_GRID[0])
            for c in range(FOV_GRID[1])
        ]
        container.add_table("FOV_ROI_table", RoiTable(rois), backend="anndata")
        labels = np.zeros((1, height, width), np.uint32)
        for r in range(FOV_GRID[0]):
            for c in range(FOV_GRID[1]):
                box = blobs(FOV, seed=r * 10 + c)
                labels[0, r * FOV[0] : (r + 1) * FOV[0], c * FOV[1] : (c + 1) * FOV[1]] = box
        container.derive_label("nuclei").set_array(labels)
        sources[parse_well_path(f"{row}/{column}")] = (image, labels[0])
    return sources


@sqlite_only
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_fractal_plate_gives_one_site_per_field_of_view(tmaps, tmp_path: Path, version):
    sources = write_fractal_plate(tmp_path / "f.zarr", version, [("B", "3"), ("D", "7")])
    eid = new_experiment()
    result = registry.register_files(eid, PLATE, ACQ, tmp_path / "f.zarr")
    assert result.images == ["B/03/0", "D/07/0"]
    convert(eid)

    cells = {(r, c) for r in range(FOV_GRID[0]) for c in range(FOV_GRID[1])}
    assert site_cells(eid) == {"B03": cells, "D07": cells}
    planes = extracted(eid)
    assert len(planes) == 2 * len(cells) * len(CHANNELS)
    for p in planes:
        image = sources[p.well][0]
        crop = image[CHANNELS.index(p.channel), 0][
            p.y * FOV[0] : (p.y + 1) * FOV[0], p.x * FOV[1] : (p.x + 1) * FOV[1]
        ]
        np.testing.assert_array_equal(p.pixels, crop)

    result = invoke("labels", "-e", str(eid), "-p", PLATE, "-a", ACQ, "-n", "nuclei")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    with tm.utils.ExperimentSession(eid) as session:
        type_id = session.scalar(sa.select(tm.MapobjectType.id))
    for (well, y, x), site_id in site_ids(eid).items():
        labels = sources[well][1][y * FOV[0] : (y + 1) * FOV[0], x * FOV[1] : (x + 1) * FOV[1]]
        np.testing.assert_array_equal(segmentations.get_segmentation(eid, type_id, site_id), labels)


@sqlite_only
def test_site_numbers_from_one_without_positions_fill_the_grid_from_its_start(
    tmaps, tmp_path: Path
):
    names = ["1", "2", "3", "4"]
    plate = write_plate(tmp_path / "p.zarr", "0.5", {"B/03": names}, shape=(2, 8, 8), axes="cyx")
    eid = new_experiment()
    registry.register_files(eid, PLATE, ACQ, plate.path)
    convert(eid, n_vertical=2, n_horizontal=2)
    assert site_cells(eid) == {"B03": {(0, 0), (0, 1), (1, 0), (1, 1)}}
    order = dict(zip(names, [(0, 0), (0, 1), (1, 0), (1, 1)], strict=True))
    for p in extracted(eid):
        name = next(n for n, cell in order.items() if cell == (p.y, p.x))
        expected = plate.fields[f"B/03/{name}"][CHANNELS.index(p.channel)]
        np.testing.assert_array_equal(p.pixels, expected)


@sqlite_only
def test_irregular_field_positions_are_ranked_into_a_grid(tmaps, tmp_path: Path):
    # fields of 8x8 px (4x4 um): jittered, with a gap of several fields in the second row
    shifts = {"0": (0.0, 0.0), "1": (0.3, 4.1), "2": (4.2, -0.2), "3": (3.9, 30.0)}
    plate = write_plate(tmp_path / "p.zarr", "0.4", {"B/03": list(shifts)}, shape=(1, 8, 8),
                        axes="cyx")  # fmt: skip
    for name, shift in shifts.items():
        attrs_path = plate.path / "B" / "03" / name / ".zattrs"
        attrs = json.loads(attrs_path.read_text())
        dataset = attrs["multiscales"][0]["datasets"][0]
        dataset["coordinateTransformations"].append(
            {"type": "translation", "translation": [0.0, *shift]}
        )
        attrs_path.write_text(json.dumps(attrs))
    eid = new_experiment()
    registry.register_files(eid, PLATE, ACQ, plate.path)
    convert(eid)
    expected = {"0": (0, 0), "1": (0, 1), "2": (1, 0), "3": (1, 2)}
    for p in extracted(eid):
        name = next(n for n, cell in expected.items() if cell == (p.y, p.x))
        np.testing.assert_array_equal(p.pixels, plate.fields[f"B/03/{name}"][0])
    assert site_cells(eid) == {"B03": set(expected.values())}


@sqlite_only
def test_one_field_per_well_and_other_column_spellings(tmaps, tmp_path: Path):
    wells = {"A/1": ["0"], "B/3": ["0"], "H/12": ["0"]}
    plate = write_plate(tmp_path / "p.zarr", "0.5", wells, shape=(1, 6, 10), axes="cyx",
                        dtype=np.uint8)  # fmt: skip
    eid = new_experiment()
    registry.register_files(eid, PLATE, ACQ, plate.path)
    convert(eid)
    assert site_cells(eid) == {"A01": {(0, 0)}, "B03": {(0, 0)}, "H12": {(0, 0)}}
    for p in extracted(eid):
        path = {"A01": "A/1/0", "B03": "B/3/0", "H12": "H/12/0"}[p.well]
        np.testing.assert_array_equal(p.pixels, plate.fields[path][0])


def _ragged(plate: Plate) -> None:
    """Give field B/03/1 a channel more than B/03/0."""
    group = zarr.open_group(str(plate.path / "B" / "03" / "1"), mode="a")
    for key in list(group.keys()):
        del group[key]
    data = np.zeros((3, 4, 6), np.uint16)
    write_field(group, data, "cyx", plate.version, channels=("DAPI", "GFP", "RFP"))


def _version_03(plate: Plate) -> None:
    meta = plate.path / ("zarr.json" if plate.version == "0.5" else ".zattrs")
    attrs = json.loads(meta.read_text())
    node = attrs["attributes"]["ome"] if plate.version == "0.5" else attrs
    node["version"] = "0.3"
    node["plate"]["version"] = "0.3"
    meta.write_text(json.dumps(attrs))


def _missing_well(plate: Plate) -> None:
    shutil.rmtree(plate.path / "C")


def _missing_field(plate: Plate) -> None:
    shutil.rmtree(plate.path / "B" / "03" / "1")


def _not_a_plate(plate: Plate) -> None:
    shutil.rmtree(plate.path)
    plate.path.mkdir()
    (plate.path / "image.tif").write_bytes(b"not a plate")


@sqlite_only
@pytest.mark.parametrize(
    ("version", "damage", "message"),
    [
        ("0.5", _not_a_plate, "is no OME-Zarr HCS plate: expected a zarr.json"),
        ("0.4", _version_03, "version 0.3 is not supported"),
        ("0.5", _version_03, "version 0.3 is not supported"),
        ("0.4", _missing_well, "(missing wells): C/05"),
        ("0.5", _missing_field, "(missing fields): B/03/1"),
        ("0.4", _ragged, "fields B/03/0 and B/03/1 differ in their channel count (2 vs 3)"),
        ("0.5", _ragged, "fields B/03/0 and B/03/1 differ in their channel count (2 vs 3)"),
    ],
)
def test_bad_plates_fail_with_one_line_and_register_nothing(
    tmaps, tmp_path: Path, version, damage, message
):
    plate = write_plate(tmp_path / "p.zarr", version, {"B/03": ["0", "1"], "C/05": ["0"]},
                        shape=(2, 4, 6), axes="cyx")  # fmt: skip
    damage(plate)
    eid = new_experiment()
    line = one_error_line(
        invoke("files", "-e", str(eid), "-p", PLATE, "-a", ACQ, "-s", str(plate.path))
    )
    assert message in line, line
    assert microscope_file_rows(eid) == {}
    with tm.utils.ExperimentSession(eid) as session:
        sources = Path(registry.find_acquisition(session, PLATE, ACQ).sources_location)
    assert not sources.exists() or not any(sources.iterdir())


@sqlite_only
def test_other_pixel_types_fail_naming_the_field(tmaps, tmp_path: Path):
    plate = write_plate(tmp_path / "p.zarr", "0.5", {"B/03": ["0"]}, shape=(1, 4, 6), axes="cyx",
                        dtype=np.int32)  # fmt: skip
    with pytest.raises(
        InvalidInputError, match=r"field image B/03/0: unsupported pixel type int32"
    ):
        read_plane(plate.path / "B" / "03" / "0")
    assert [f.path for f in open_plate(plate.path).fields] == ["B/03/0"]


def test_well_paths_are_read_in_every_spelling():
    assert [parse_well_path(p) for p in ("B/03", "B/3", "b/003", "H/12")] == [
        "B03", "B03", "B03", "H12",
    ]  # fmt: skip
    for bad in ("B", "AA/01", "B/x", "B/0", "B/03/0"):
        with pytest.raises(ValueError, match="well"):
            parse_well_path(bad)
