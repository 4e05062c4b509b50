"""Plates shaped like real ones, written by the tests themselves (not by ``tm_simulate``).

Real CellVoyager plates place fields anywhere: side by side in one well and
tens of field-widths apart in another, with failed acquisitions (``ERR``
records), uneven numbers of fields per well and z-stacks taken at a time point
that is not the first.  Plain TIFF folders number their sites from 0 or from
1, or hold a single freely named image.  These tests write such plates as
small ``.mlf``/``.mrf`` files and tiny TIFFs and check

* the site grid that :func:`~tmlib.microscopes.grid.plan_site_grid` derives
  from them (from the field size in the metadata, else from the gaps between
  positions, else from the number of sites per well), and
* that a CellVoyager plate and a one-image TIFF experiment run through
  ``tm_workflow ID submit`` with the default description to the end.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile
from helpers import cli, ok, run_step, simulated_site, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import AlreadyExistsError, InvalidInputError
from tmlib.microscopes import get_microscope_type
from tmlib.microscopes.base import PlaneRecord
from tmlib.microscopes.cellvoyager import read_mrf
from tmlib.microscopes.grid import SiteLocation, plan_site_grid, site_grid_positions
from tmlib.workflow import manager

NAMESPACE = "http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"
EOL = "\r\n"  # the instrument writes CRLF


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


# ------------------------------------------------------------ a CellVoyager plate


@dataclass(frozen=True)
class Field:
    """One field of a well: its 1-based index and stage position (um, y pointing up)."""

    well: str
    index: int
    x: float
    y: float


@dataclass(frozen=True)
class Channel:
    """One ``MeasurementChannel``: image size in pixels and pixel size in um (None: absent)."""

    ch: int
    height: int = 24
    width: int = 32
    pixel_size: float | None = 0.65


@dataclass
class CellVoyagerPlate:
    """What a CellVoyager writes for one acquisition, small.

    Every field is imaged in every channel at `tpoint` (1-based, as in the
    names) and z-planes ``1..zplanes``; `failed` fields have an ``ERR``
    record and no image.
    """

    prefix: str
    fields: list[Field]
    channels: tuple[Channel, ...] = (Channel(1),)
    zplanes: int = 1
    tpoint: int = 1
    failed: list[Field] = field(default_factory=list)

    def image_name(self, f: Field, ch: int, z: int) -> str:
        return f"{self.prefix}_{f.well}_T{self.tpoint:04d}F{f.index:03d}L01A01Z{z:02d}C{ch:02d}.tif"

    def planes(self) -> list[tuple[Field, Channel, int, str]]:
        return [
            (f, c, z, self.image_name(f, c.ch, z))
            for f in self.fields
            for c in self.channels
            for z in range(1, self.zplanes + 1)
        ]

    def write(self, directory: Path, pixels: bool = True) -> dict[str, np.ndarray]:
        """Write images, ``.mlf`` and ``.mrf``; returns the pixels of every image file."""
        directory.mkdir(parents=True, exist_ok=True)
        written = {}
        records = []
        for number, (f, c, z, name) in enumerate(self.planes()):
            if pixels:
                image = simulated_site((c.height, c.width), seed=number)["dapi"]
                image = np.ascontiguousarray(image) + np.uint16(z)  # planes differ in z
                tifffile.imwrite(directory / name, image, photometric="minisblack")
                written[name] = image
            else:  # the readers look at names only
                (directory / name).touch()
            records.append(self._record("IMG", f, c.ch, z, name, number))
        for number, f in enumerate(self.failed):
            # a failed acquisition: an ERR record with a message, and no image
            records.append(self._record("ERR", f, 1, 1, "Acquisition error: AF failed", number))
        (directory / "MeasurementData.mlf").write_bytes(
            EOL.join(
                [
                    '<?xml version="1.0" encoding="utf-8"?>',
                    f'<bts:MeasurementData xmlns:bts="{NAMESPACE}" bts:Version="1.0">',
                    *records,
                    "</bts:MeasurementData>",
                    "",
                ]
            ).encode()
        )
        (directory / "MeasurementDetail.mrf").write_bytes(self.mrf().encode())
        return written

    def _record(self, kind: str, f: Field, ch: int, z: int, text: str, number: int) -> str:
        row, column = ord(f.well[0]) - ord("A") + 1, int(f.well[1:])
        return (
            f'<bts:MeasurementRecord bts:Time="2016-05-10T14:{number // 60:02d}:{number % 60:02d}'
            f'.078+02:00" bts:Type="{kind}" bts:Column="{column}" bts:Row="{row}"'
            f' bts:FieldIndex="{f.index}" bts:TimePoint="{self.tpoint}" bts:TimelineIndex="1"'
            f' bts:X="{f.x}" bts:Y="{f.y}" bts:Z="10.5" bts:ActionIndex="1" bts:Action="3D"'
            f' bts:ZIndex="{z}" bts:Ch="{ch}">{text}</bts:MeasurementRecord>'
        )

    def mrf(self) -> str:
        lines = [
            '<?xml version="1.0" encoding="utf-8"?>',
            f'<bts:MeasurementDetail xmlns:bts="{NAMESPACE}" bts:Version="1.0"'
            f' bts:Title="{self.prefix}" bts:ColumnCount="24" bts:RowCount="16"'
            f' bts:ZCount="{self.zplanes}" bts:TargetSystem="CV7000">',
        ]
        for c in self.channels:
            size = (
                ""
                if c.pixel_size is None
                else f' bts:HorizontalPixelDimension="{c.pixel_size}"'
                f' bts:VerticalPixelDimension="{c.pixel_size}"'
            )
            lines.append(
                f'  <bts:MeasurementChannel bts:Ch="{c.ch}"{size} bts:CameraNumber="{c.ch}"'
                f' bts:InputBitDepth="16" bts:HorizontalPixels="{c.width}"'
                f' bts:VerticalPixels="{c.height}" />'
            )
        lines += ["</bts:MeasurementDetail>", ""]
        return EOL.join(lines)


#: Field size of the default channel: 24 x 32 px at 0.65 um.
FIELD_H, FIELD_W = 24 * 0.65, 32 * 0.65


def irregular_fields() -> list[Field]:
    """Uneven fields per well: side by side, 30 field widths apart, alone."""
    return [
        # B03: two fields side by side (5% overlap), one stage-y jitter apart
        Field("B03", 1, 100.0, 200.0),
        Field("B03", 2, 100.0 + 0.95 * FIELD_W, 200.3),
        # C05: two fields 30 field widths apart in one row, a third one row below
        Field("C05", 1, -500.0, 40.0),
        Field("C05", 2, -500.0 + 30 * FIELD_W, 39.8),
        Field("C05", 3, -500.0, 40.0 - FIELD_H),
        # D07: one field
        Field("D07", 1, 7.0, 7.0),
    ]


#: The grid of :func:`irregular_fields`: compact ranks, order kept.
IRREGULAR_GRID = {
    ("B03", 0): (0, 0),
    ("B03", 1): (0, 1),
    ("C05", 0): (0, 0),
    ("C05", 1): (0, 1),
    ("C05", 2): (1, 0),
    ("D07", 0): (0, 0),
}


def read_plate(directory: Path, mtype: str = "cellvoyager") -> list[PlaneRecord]:
    microscope = get_microscope_type(mtype)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    images = [p for p in files if microscope.is_image(p.name)]
    metadata = [p for p in files if microscope.is_metadata(p.name)]
    return microscope.read(images, metadata)


def with_sizes(records: list[PlaneRecord]) -> list[PlaneRecord]:
    """Records completed as metaconfig completes them (sizes from the headers)."""
    from dataclasses import replace

    return [replace(r, height=r.height or 24, width=r.width or 32) for r in records]


# --------------------------------------------------------------- stage positions


def test_neighbouring_and_far_apart_fields_get_cells_of_their_own(tmp_path: Path):
    plate = CellVoyagerPlate("Screen", irregular_fields(), failed=[Field("C05", 4, 0.0, 0.0)])
    plate.write(tmp_path, pixels=False)
    records = read_plate(tmp_path)
    assert {r.pixel_size_y for r in records} == {0.65}
    grid = plan_site_grid(records)
    assert grid.positions == IRREGULAR_GRID
    assert any("field 15.6 x 20.8 um, from the metadata" in m for m in grid.messages)
    assert any("gaps between far-apart fields are left out" in m for m in grid.messages)
    # pooled over the plate, the gaps alone call the 30-field gap the step
    # between columns: B03's neighbours would share a cell; the field size
    # from the metadata keeps them apart without any tightening
    assert not any("overlap" in m for m in grid.messages)


def test_without_a_field_size_the_gaps_decide_and_distinct_fields_never_collide(tmp_path: Path):
    plate = CellVoyagerPlate("Screen", irregular_fields(), channels=(Channel(1, pixel_size=None),))
    plate.write(tmp_path, pixels=False)
    records = read_plate(tmp_path)
    assert {r.pixel_size_y for r in records} == {None}
    grid = plan_site_grid(with_sizes(records))
    assert grid.positions == IRREGULAR_GRID
    assert any("no field size in the metadata of well(s) B03, C05, D07" in m for m in grid.messages)
    assert any("overlap" in m and "B03, C05" in m for m in grid.messages)


def test_the_smallest_field_of_the_channels_decides_what_is_one_row():
    def records(pixel_size_2: float) -> list[PlaneRecord]:
        # two sites 30 um apart in y, 500 um apart in x; channel 1 images
        # 100 um, channel 2 (another camera) 100 px at `pixel_size_2`
        return [
            PlaneRecord(f"{s}{c}.tif", "A01", s, c, stage_y=30.0 * s, stage_x=500.0 * s,
                        height=100, width=100, pixel_size_y=size, pixel_size_x=size)
            for s in range(2)
            for c, size in (("1", 1.0), ("2", pixel_size_2))
        ]  # fmt: skip

    # both fields 100 um high: 30 um is within half a field, one row
    assert site_grid_positions(records(1.0)) == {("A01", 0): (0, 0), ("A01", 1): (0, 1)}
    # channel 2's field is 50 um high: 30 um is more than half of it, two rows
    assert site_grid_positions(records(0.5)) == {("A01", 0): (0, 0), ("A01", 1): (1, 1)}


def test_jittered_overlapping_grid_and_heavily_overlapping_fields():
    step_y, step_x = 0.9 * 702.0, 0.9 * 832.0  # 10% overlap, 2160x2560 px at 0.325 um
    jitter = [0.4, -0.3, 0.1, -0.5, 0.2, 0.0, 0.3, -0.1, 0.45]
    sites = [
        (
            "E05", 3 * r + c, 1000 + r * step_y + jitter[3 * r + c],
            -50 + c * step_x - jitter[3 * r + c], 702.0, 832.0,
        )
        for r in range(3)
        for c in range(3)
    ]  # fmt: skip
    assert site_grid_positions(sites) == {
        ("E05", 3 * r + c): (r, c) for r in range(3) for c in range(3)
    }

    # fields overlapping by 70% in both axes are still distinct positions
    crowded = [("F06", s, 0.3 * 702.0 * s, 0.3 * 832.0 * s, 702.0, 832.0) for s in range(3)]
    grid = plan_site_grid(crowded)
    assert grid.positions == {("F06", s): (s, s) for s in range(3)}
    assert any("overlap by more than half" in m and "F06" in m for m in grid.messages)


def test_two_sites_at_one_stage_position_are_one_clear_error():
    sites = [SiteLocation("A01", 0, 5.0, 5.0, 10.0, 10.0), SiteLocation("A01", 1, 5.0, 5.0)]
    with pytest.raises(InvalidInputError) as info:
        site_grid_positions(sites)
    message = str(info.value)
    assert message == (
        "well A01: sites 0 and 1 were taken at the same stage position (y 5, x 5 um), so they "
        "cannot both have a place in the well's grid"
    )


def test_z_stack_at_a_later_time_point_and_err_records(tmp_path: Path):
    fields = [Field("B02", 1, 0.0, 0.0), Field("B02", 2, FIELD_W, 0.0)]
    plate = CellVoyagerPlate(
        "Screen", fields, zplanes=3, tpoint=2, failed=[Field("B02", 3, 2 * FIELD_W, 0.0)]
    )
    plate.write(tmp_path, pixels=False)
    records = read_plate(tmp_path)
    assert len(records) == 6
    assert {(r.tpoint, r.zplane) for r in records} == {(1, z) for z in range(3)}
    assert site_grid_positions(records) == {("B02", 0): (0, 0), ("B02", 1): (0, 1)}


def test_mrf_pixel_sizes_per_channel(tmp_path: Path):
    plate = CellVoyagerPlate(
        "P", [], channels=(Channel(1, pixel_size=0.65), Channel(2, 12, 16, 1.3),
                           Channel(3, pixel_size=None), Channel(4, pixel_size=0.0)),
    )  # fmt: skip
    path = tmp_path / "MeasurementDetail.mrf"
    path.write_text(plate.mrf())
    sizes = {ch: (c.height, c.pixel_size_y, c.pixel_size_x) for ch, c in read_mrf(path).items()}
    assert sizes == {
        1: (24, 0.65, 0.65),
        2: (12, 1.3, 1.3),
        3: (24, None, None),
        4: (24, None, None),  # zero is no size: the gaps decide
    }


# ------------------------------------------------------------ no stage positions


def tiff_names(numbers: dict[str, range], plate: str = "Plate") -> list[str]:
    return [f"{plate}_{w}_s{s}_cDAPI.tif" for w, sites in numbers.items() for s in sites]


def test_sites_numbered_from_1_or_0_give_the_same_near_square_grid():
    reader = get_microscope_type("tiff")
    uneven = {"A01": range(4), "A02": range(1), "B01": range(2)}
    results = []
    for first in (0, 1):
        names = tiff_names({w: range(first, first + len(r)) for w, r in uneven.items()})
        grid = plan_site_grid(reader.read(names, []))
        results.append({(w, s - first): cell for (w, s), cell in grid.positions.items()})
        (message,) = grid.messages
        assert "3 well(s) without stage positions: 2 row(s) x 2 column(s)" in message
        assert "chosen for up to 4 site(s) per well" in message
        assert f"first site number {first}" in message
    assert (
        results[0]
        == results[1]
        == {
            ("A01", 0): (0, 0),
            ("A01", 1): (0, 1),
            ("A01", 2): (1, 0),
            ("A01", 3): (1, 1),
            ("A02", 0): (0, 0),
            ("B01", 0): (0, 0),
            ("B01", 1): (0, 1),
        }
    )


def test_one_site_per_well_needs_no_grid_and_layouts_choose_their_shape():
    reader = get_microscope_type("tiff")
    one = reader.read(tiff_names({"A01": range(1, 2), "C03": range(1, 2)}), [])
    assert site_grid_positions(one) == {("A01", 1): (0, 0), ("C03", 1): (0, 0)}
    six = [("A01", s) for s in range(1, 7)]
    assert max(site_grid_positions(six, "horizontal").values()) == (1, 2)  # 2 x 3
    assert max(site_grid_positions(six, "vertical").values()) == (2, 1)  # 3 x 2
    assert max(site_grid_positions(six, n_horizontal=6).values()) == (0, 5)  # 1 x 6
    with pytest.raises(InvalidInputError, match=r"well A01 has 6 sites \(site numbers 1 to 6\)"):
        site_grid_positions(six, n_vertical=2, n_horizontal=2)


def test_plate_named_like_a_well(tmp_path: Path):
    # CellVoyager names without an .mlf, plate "A01": the well is B03
    plate = CellVoyagerPlate("A01", [Field("B03", 1, 0, 0), Field("B03", 2, 0, 0)])
    mtype = get_microscope_type("cellvoyager")
    names = [name for *_, name in plate.planes()]
    assert all(mtype.is_image(n) for n in names)
    records = mtype.read(names, [])
    assert {(r.well, r.site) for r in records} == {("B03", 0), ("B03", 1)}
    assert site_grid_positions(records) == {("B03", 0): (0, 0), ("B03", 1): (0, 1)}
    # generic TIFF names with the plate first
    records = get_microscope_type("tiff").read(tiff_names({"B03": range(1, 3)}, plate="A01"), [])
    assert {(r.well, r.site) for r in records} == {("B03", 1), ("B03", 2)}


def test_a_single_freely_named_tiff_is_one_site(caplog: pytest.LogCaptureFixture):
    reader = get_microscope_type("tiff")
    (record,) = reader.read(["/data/cells.tif"], [])
    assert (record.filename, record.well, record.site, record.channel) == (
        "cells.tif", "A01", 0, "cells"
    )  # fmt: skip
    assert "cells.tif does not match the default pattern" in caplog.text
    assert site_grid_positions([record]) == {("A01", 0): (0, 0)}
    # several freely named files: only a regex can tell them apart
    with pytest.raises(InvalidInputError, match="file name 'a.tif' does not match"):
        reader.read(["a.tif", "b.tif"], [])


# ------------------------------------------------------------------ end to end


def new_experiment(microscope: str, plate: str, source: Path) -> int:
    with contextlib.suppress(AlreadyExistsError):
        registry.add_user("rita", "pw-of-rita", "rita@example.org")
    eid = registry.add_experiment("real", "rita", microscope_type=microscope)
    registry.add_plate(eid, plate)
    registry.add_acquisition(eid, plate, "acq01")
    registry.register_files(eid, plate, "acq01", source)
    return eid


def submit_with_defaults(eid: int) -> None:
    """``tm_workflow ID submit`` with the default description; every job must succeed."""
    result = ok(cli("tm_workflow", eid, "submit", timeout=600))
    assert "all jobs succeeded" in result.stdout
    tree = manager.status(eid)
    stack, stages = [tree], [s["name"] for s in tree["subtasks"]]
    assert stages == ["image_conversion", "image_preprocessing", "pyramid_creation",
                      "image_analysis"]  # fmt: skip
    while stack:
        node = stack.pop()
        assert (node["state"], node["exitcode"], node["failed"]) == ("TERMINATED", 0, 0), node
        stack.extend(node["subtasks"])


def sites_and_planes(eid: int, pyramids: bool = True) -> tuple[dict, dict]:
    """``(well, y, x) -> (height, width)`` of every site, and every plane's pixels by key."""
    with tm.utils.ExperimentSession(eid) as session:
        sites = {
            (well, s.y, s.x): (s.height, s.width)
            for s, well in session.execute(sa.select(tm.Site, tm.Well.name).join(tm.Well))
        }
        planes = {}
        for cif in session.scalars(sa.select(tm.ChannelImageFile)):
            key = (cif.site.well.name, cif.site.y, cif.site.x, cif.channel.name, cif.tpoint,
                   cif.zplane)  # fmt: skip
            planes[key] = cif.get()
        if pyramids:  # one per channel, time point and z-plane
            layers = session.scalar(sa.select(sa.func.count()).select_from(tm.ChannelLayer))
            assert layers == len({(k[3], k[4], k[5]) for k in planes})
    return sites, planes


@pytest.mark.slow
def test_cellvoyager_plate_runs_through_tm_workflow_with_defaults(tmaps, tmp_path: Path):
    source = tmp_path / "A01"
    plate = CellVoyagerPlate(
        "A01",  # the plate's name looks like a well's
        irregular_fields(),
        channels=(Channel(1), Channel(2)),
        zplanes=2,  # the default pipeline projects the stacks
        tpoint=2,  # the first time point was not taken
        failed=[Field("C05", 4, 0.0, 0.0), Field("D07", 2, 0.0, 0.0)],
    )
    written = plate.write(source)
    eid = new_experiment("cellvoyager", "A01", source)
    submit_with_defaults(eid)

    sites, planes = sites_and_planes(eid)
    assert sites == {(w, y, x): (24, 32) for (w, _), (y, x) in IRREGULAR_GRID.items()}
    expected = {}
    for f, c, z, name in plate.planes():
        y, x = IRREGULAR_GRID[(f.well, f.index - 1)]
        expected[(f.well, y, x, f"A01_C{c.ch:02d}", 0, z - 1)] = written[name]
    assert sorted(planes) == sorted(expected)
    for key, pixels in expected.items():
        np.testing.assert_array_equal(planes[key], pixels, err_msg=str(key))
    log = ok(cli("metaconfig", eid, "log", "-p", "run", "-j", "1")).stdout
    assert "site grid of 3 well(s) from stage positions" in log


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_z_stack_at_a_later_time_point_is_converted(tmaps, tmp_path: Path):
    """The image_conversion stage (in this process) on z-stacks taken at time point 2 only."""
    source = tmp_path / "plate"
    fields = [Field("B02", 1, 0.0, 0.0), Field("B02", 2, FIELD_W, 0.0), Field("C02", 1, 0, 0)]
    plate = CellVoyagerPlate(
        "Screen", fields, zplanes=3, tpoint=2, failed=[Field("C02", 2, 0.0, 0.0)]
    )
    written = plate.write(source)
    eid = new_experiment("cellvoyager", "plate01", source)
    for step in ("metaextract", "metaconfig", "imextract"):
        run_step(eid, step)
    _, planes = sites_and_planes(eid, pyramids=False)
    grid = {("B02", 1): (0, 0), ("B02", 2): (0, 1), ("C02", 1): (0, 0)}
    expected = {
        (f.well, *grid[(f.well, f.index)], "A01_C01", 0, z - 1): written[name]
        for f, _, z, name in plate.planes()
    }
    assert sorted(planes) == sorted(expected)  # time point 0: the first that exists
    for key, pixels in expected.items():
        np.testing.assert_array_equal(planes[key], pixels, err_msg=str(key))


@pytest.mark.slow
def test_one_tiff_image_runs_through_tm_workflow_with_defaults(tmaps, tmp_path: Path):
    source = tmp_path / "images"
    source.mkdir()
    pixels = simulated_site((40, 56), seed=3)["dapi"]
    tifffile.imwrite(source / "cells.tif", pixels, photometric="minisblack")
    eid = new_experiment("tiff", "plate01", source)
    submit_with_defaults(eid)

    sites, planes = sites_and_planes(eid)
    assert sites == {("A01", 0, 0): (40, 56)}
    assert list(planes) == [("A01", 0, 0, "cells", 0, 0)]
    np.testing.assert_array_equal(planes[("A01", 0, 0, "cells", 0, 0)], pixels)
    log = ok(cli("metaconfig", eid, "log", "-p", "run", "-j", "1")).stdout
    assert "1 row(s) x 1 column(s)" in log
