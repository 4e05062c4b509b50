"""The image_conversion stage (metaextract, metaconfig, imextract) on simulated plates.

The steps run in-process through their API (``init``, ``run`` for every job,
``collect``), the same code their jobs run; a few tests use the real command
lines (``metaextract ID run -j N``, ``tm_workflow ID submit``).

Every result is checked against the simulator's own conventions, not against
what the readers wrote: which source file and page hold the plane of a well,
site, channel, time point and z-plane (the writers' ``image_filename``), and the
grid position of every site (``ground_truth/sites.csv``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile
from helpers import files_under, run_step, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import AlreadyExistsError, InvalidInputError
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.simulate import cellvoyager as cv_sim
from tmlib.simulate import metamorph as mm_sim
from tmlib.simulate import tiff as tiff_sim
from tmlib.simulate import visiview as vv_sim
from tmlib.simulate.plate import site_grid, well_names
from tmlib.workflow import manager
from tmlib.workflow.description import WorkflowDescription
from tmlib.workflow.step import get_step

BIN = Path(sys.executable).parent
USER = "alice"
PLATE = "plate"
TYPES = ("cellvoyager", "visiview", "metamorph", "tiff")

#: run only on SQLite (where the database does not matter)
sqlite_only = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


# --------------------------------------------------------------------- plates


def spec_of(microscope: str, **changes: int) -> PlateSpec:
    """A small plate: 2 wells of 48x64-pixel sites (not square: height and width differ)."""
    base = PlateSpec(
        microscope=microscope, plate_format=96, wells=2, sites=4, channels=2, height=48, width=64
    )
    return replace(base, **changes)


#: the plate of each type in the per-type test: cellvoyager and metamorph get 6
#: sites (a 2x3 grid, so rows and columns cannot be swapped unnoticed)
TYPE_SPECS = {
    "cellvoyager": spec_of("cellvoyager", sites=6, zplanes=2, tpoints=2),
    "visiview": spec_of("visiview", zplanes=2, tpoints=2),
    "metamorph": spec_of("metamorph", sites=6),
    "tiff": spec_of("tiff", zplanes=2, tpoints=2),
}


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Callable[[PlateSpec], Path]:
    """Simulated plates, written once per spec; read-only (copy before changing them)."""
    cache: dict[PlateSpec, Path] = {}

    def get(spec: PlateSpec) -> Path:
        if spec not in cache:
            cache[spec] = tmp_path_factory.mktemp(f"plate-{spec.microscope}")
            simulate_plate(cache[spec], spec)
        return cache[spec]

    return get


def private_copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def grid_truth(src: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """``(well, site) -> (grid row, grid column)`` from the simulator's sites.csv."""
    with open(src / "ground_truth" / "sites.csv", newline="") as fh:
        return {
            (row["well"], int(row["site"])): (int(row["grid_row"]), int(row["grid_column"]))
            for row in csv.DictReader(fh)
        }


def channel_name(microscope: str, channel: int) -> str:
    """Name the readers give a simulated channel (0-based index)."""
    return {
        "cellvoyager": lambda c: f"A01_C{c + 1:02d}",
        "visiview": vv_sim.wave_name,
        "metamorph": lambda c: str(c + 1),
        "tiff": str,
    }[microscope](channel)


def source_plane(spec: PlateSpec, well_index: int, well: str, site: int, c: int, z: int, t: int):
    """``(file name, page)`` of a simulated plane, by the writers' naming rules."""
    p = spec.prefix
    if spec.microscope == "cellvoyager":
        return cv_sim.image_filename(p, well, site, c, z, t), 0
    if spec.microscope == "visiview":
        stage = well_index * spec.sites + site
        return vv_sim.image_filename(p, well, stage, c, t, timelapse=spec.tpoints > 1), z
    if spec.microscope == "metamorph":
        return mm_sim.image_filename(p, well, site, c, channels=spec.channels, seed=spec.seed), 0
    return tiff_sim.image_filename(p, well, site, c, z, t), 0


#: (plate, well, site y, site x, channel, cycle index, tpoint, zplane)
Key = tuple[str, str, int, int, str, int, int, int]


def expected_planes(
    src: Path,
    spec: PlateSpec,
    *,
    mip: bool = False,
    cycle: int = 0,
    tpoint_offset: int = 0,
    channel_prefix: str = "",
    plate: str = PLATE,
) -> dict[Key, list[tuple[Path, int]]]:
    """Every plane the stage should create, with the source planes it is the maximum of."""
    grid = grid_truth(src)
    planes: dict[Key, list[tuple[Path, int]]] = {}
    for wi, well in enumerate(well_names(spec.plate_format, spec.wells)):
        for site in range(spec.sites):
            y, x = grid[(well, site)]
            for c in range(spec.channels):
                name = channel_prefix + channel_name(spec.microscope, c)
                for t in range(spec.tpoints):
                    for z in range(spec.zplanes):
                        key = (plate, well, y, x, name, cycle, tpoint_offset + t, 0 if mip else z)
                        filename, page = source_plane(spec, wi, well, site, c, z, t)
                        planes.setdefault(key, []).append((src / filename, page))
    return planes


# ------------------------------------------------------------ experiments and steps


def new_experiment(microscope: str, mode: str = "basic", name: str = "exp") -> int:
    with contextlib.suppress(AlreadyExistsError):
        registry.add_user(USER, "secret", f"{USER}@example.org")
    eid = registry.add_experiment(
        name, USER, microscope_type=microscope, plate_format=96, plate_acquisition_mode=mode
    )
    registry.add_plate(eid, PLATE)
    return eid


def add_acquisition(eid: int, name: str, src: Path, copy: bool = False) -> None:
    registry.add_acquisition(eid, PLATE, name)
    registry.register_files(eid, PLATE, name, src, copy=copy)


def grid_args(spec: PlateSpec) -> dict:
    """metaconfig arguments for a type without stage positions: the simulator's layout."""
    rows, cols = site_grid(spec.sites)
    return {"stitch_layout": "horizontal", "n_vertical": rows, "n_horizontal": cols}


def run_stage(eid: int, metaconfig: dict | None = None, imextract: dict | None = None) -> None:
    run_step(eid, "metaextract", batch_size=5)
    run_step(eid, "metaconfig", **(metaconfig or {}))
    run_step(eid, "imextract", batch_size=7, **(imextract or {}))


def stage_failure(eid: int, metaconfig: dict | None = None) -> tuple[str, str, InvalidInputError]:
    """Run the stage until a step fails with bad input: ``(step, phase, error)``."""
    for name, args in (
        ("metaextract", {"batch_size": 5}),
        ("metaconfig", metaconfig or {}),
        ("imextract", {}),
    ):
        step = get_step(name)(eid)
        phases = [("init", lambda s=step, a=args: s.init(a))]
        phases.append(("run", lambda s=step: [s.run(j) for j in s.run_job_ids()]))
        if step.has_collect:
            phases.append(("collect", step.collect))
        for phase, call in phases:
            try:
                call()
            except InvalidInputError as err:
                return name, phase, err
    pytest.fail("the stage ran without an error")


def count(eid: int, model: type) -> int:
    with tm.utils.ExperimentSession(eid) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def converted_planes(eid: int) -> dict[Key, np.ndarray]:
    """Every ChannelImageFile of the experiment by its key, with its pixels."""
    with tm.utils.ExperimentSession(eid) as session:
        rows = session.execute(
            sa.select(tm.ChannelImageFile, tm.Plate.name, tm.Well.name, tm.Site, tm.Channel.name)
            .join(tm.Site, tm.ChannelImageFile.site_id == tm.Site.id)
            .join(tm.Well, tm.Site.well_id == tm.Well.id)
            .join(tm.Plate, tm.Well.plate_id == tm.Plate.id)
            .join(tm.Channel, tm.ChannelImageFile.channel_id == tm.Channel.id)
        ).all()
        planes = {}
        for cif, plate, well, site, channel in rows:
            key = (plate, well, site.y, site.x, channel, cif.cycle.index, cif.tpoint, cif.zplane)
            assert key not in planes, f"two image files for {key}"
            planes[key] = cif.get()
        return planes


def assert_converted(eid: int, expected: dict[Key, list[tuple[Path, int]]]) -> None:
    """The experiment holds exactly the expected planes, each equal to its source pixels."""
    actual = converted_planes(eid)
    assert sorted(actual) == sorted(expected)
    for key, sources in expected.items():
        stack = np.stack([tifffile.imread(path, key=page) for path, page in sources])
        want = stack.max(axis=0)
        got = actual[key]
        assert got.dtype == want.dtype, key
        np.testing.assert_array_equal(got, want, err_msg=str(key))


def snapshot(eid: int) -> list[tuple]:
    """Sorted rows of wells, sites, channels, cycles and image files, with pixel digests."""
    with tm.utils.ExperimentSession(eid) as session:
        rows = session.execute(
            sa.select(
                tm.Plate.name,
                tm.Well.name,
                tm.Site.y,
                tm.Site.x,
                tm.Site.height,
                tm.Site.width,
                tm.Channel.name,
                tm.Channel.wavelength,
                tm.Channel.bit_depth,
                tm.Cycle.index,
                tm.ChannelImageFile.tpoint,
                tm.ChannelImageFile.zplane,
                tm.Acquisition.name,
                tm.ChannelImageFile,
            )  # fmt: skip
            .join(tm.Site, tm.ChannelImageFile.site_id == tm.Site.id)
            .join(tm.Well, tm.Site.well_id == tm.Well.id)
            .join(tm.Plate, tm.Well.plate_id == tm.Plate.id)
            .join(tm.Channel, tm.ChannelImageFile.channel_id == tm.Channel.id)
            .join(tm.Cycle, tm.ChannelImageFile.cycle_id == tm.Cycle.id)
            .join(tm.Acquisition, tm.ChannelImageFile.acquisition_id == tm.Acquisition.id)
        ).all()
        result = []
        for *values, cif in rows:
            try:
                pixels = cif.get()
                digest = f"{pixels.dtype}:{hashlib.sha1(pixels.tobytes()).hexdigest()}"
            except Exception as err:  # a missing or broken HDF5 file is a difference too
                digest = f"unreadable: {type(err).__name__}"
            result.append((*values, json.dumps(cif.file_map, sort_keys=True), digest))
        counts = tuple(
            session.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (tm.Well, tm.Site, tm.Channel, tm.Cycle, tm.ChannelImageFile)
        )
    return [("counts", *counts), *sorted(result)]


def experiment_location(eid: int) -> Path:
    with tm.utils.ExperimentSession(eid) as session:
        return Path(session.scalar(sa.select(tm.Experiment.location)))


def assert_no_leftovers(eid: int) -> None:
    """Channel directories hold exactly the image files of the rows; no temporary files."""
    location = experiment_location(eid)
    with tm.utils.ExperimentSession(eid) as session:
        wanted = sorted(Path(c.location) for c in session.scalars(sa.select(tm.ChannelImageFile)))
    assert files_under(location / "channels") == wanted
    temporary = [
        p
        for p in files_under(location)
        if p.name.startswith(".") or p.suffix in (".tmp", ".part") or ".tmp" in p.parent.name
    ]
    assert temporary == []


# --------------------------------------------------- 1. every type, end to end


@pytest.mark.parametrize("microscope", TYPES)
def test_stage_converts_each_microscope_type(tmaps, simulated, microscope: str):
    spec = TYPE_SPECS[microscope]
    src = simulated(spec)
    eid = new_experiment(microscope)
    add_acquisition(eid, "acq", src)
    if microscope == "cellvoyager":
        # stage positions decide; a layout that would give other positions is ignored
        rows, cols = site_grid(spec.sites)
        args = {"stitch_layout": "vertical", "n_vertical": cols, "n_horizontal": rows}
    else:
        args = grid_args(spec)
    run_stage(eid, metaconfig=args)

    n_sites = spec.wells * spec.sites
    assert count(eid, tm.Well) == spec.wells
    assert count(eid, tm.Site) == n_sites
    assert count(eid, tm.Channel) == spec.channels
    assert count(eid, tm.Cycle) == 1
    assert count(eid, tm.ChannelImageFile) == spec.n_images
    with tm.utils.ExperimentSession(eid) as session:
        sizes = set(session.execute(sa.select(tm.Site.height, tm.Site.width)).all())
        channels = session.execute(sa.select(tm.Channel.name, tm.Channel.bit_depth)).all()
    assert sizes == {(spec.height, spec.width)}
    assert sorted(channels) == sorted((channel_name(microscope, c), 16) for c in range(2))
    assert_converted(eid, expected_planes(src, spec))
    assert_no_leftovers(eid)


@sqlite_only
@pytest.mark.parametrize("microscope", ["cellvoyager", "visiview", "tiff"])
def test_mip_projects_each_z_stack_to_its_maximum(tmaps, simulated, microscope: str):
    spec = spec_of(microscope, wells=1, zplanes=3)
    src = simulated(spec)
    eid = new_experiment(microscope)
    add_acquisition(eid, "acq", src)
    run_stage(eid, metaconfig={**grid_args(spec), "mip": True})
    assert count(eid, tm.ChannelImageFile) == spec.sites * spec.channels
    expected = expected_planes(src, spec, mip=True)
    assert all(len(sources) == 3 for sources in expected.values())
    assert_converted(eid, expected)


@sqlite_only
def test_cellvoyager_err_records_are_skipped(tmaps, simulated, tmp_path: Path):
    spec = spec_of("cellvoyager", wells=1)
    src = private_copy(simulated(spec), tmp_path / "src")
    failed = cv_sim.image_filename(spec.prefix, "A01", 2, 1, 0, 0)
    (src / failed).unlink()  # the microscope wrote no image, only an ERR record
    mlf = src / "MeasurementData.mlf"
    text = mlf.read_text()
    record = re.search(rf'<bts:MeasurementRecord bts:Type="IMG"[^>]*>{re.escape(failed)}<', text)
    assert record is not None
    text = text.replace(record.group(0), record.group(0).replace('"IMG"', '"ERR"'))
    # an error record of a failed autofocus, without indices and file name
    error = '<bts:MeasurementRecord bts:Type="ERR" bts:Row="1">AF failed</bts:MeasurementRecord>'
    mlf.write_text(text.replace("</bts:MeasurementData>", error + "</bts:MeasurementData>"))
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "acq", src)
    run_stage(eid)
    expected = expected_planes(src, spec)
    grid = grid_truth(src)
    del expected[(PLATE, "A01", *grid[("A01", 2)], "A01_C02", 0, 0, 0)]
    assert_converted(eid, expected)


@sqlite_only
def test_cellvoyager_actions_become_channels(tmaps, simulated, tmp_path: Path):
    """Channel 2 taken by a second action as its Ch 1: channels A01_C01 and A02_C01."""
    spec = spec_of("cellvoyager", wells=1, sites=2)
    original = simulated(spec)
    src = private_copy(original, tmp_path / "src")
    mlf = src / "MeasurementData.mlf"
    text = mlf.read_text()
    for path in sorted(src.glob("*C02.tif")):
        new = path.name.replace("A01Z01C02", "A02Z01C01")
        path.rename(src / new)
        text = text.replace(f">{path.name}<", f">{new}<")
    text = re.sub(r'bts:ActionIndex="1"([^>]*)bts:Ch="2"', r'bts:ActionIndex="2"\1bts:Ch="1"', text)
    mlf.write_text(text)
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "acq", src)
    run_stage(eid)
    expected = {}
    for key, sources in expected_planes(original, spec).items():
        name = {"A01_C01": "A01_C01", "A01_C02": "A02_C01"}[key[4]]
        expected[(*key[:4], name, *key[5:])] = sources
    assert_converted(eid, expected)


# ------------------------------------------------------- 2. acquisition modes


def test_basic_mode_time_points_of_a_second_acquisition_follow_the_first(tmaps, simulated):
    first = spec_of("cellvoyager", wells=1, sites=2, tpoints=2, seed=1)
    second = spec_of("cellvoyager", wells=1, sites=2, seed=2)
    eid = new_experiment("cellvoyager", mode="basic")
    add_acquisition(eid, "acq1", simulated(first))
    add_acquisition(eid, "acq2", simulated(second))
    run_stage(eid)
    assert count(eid, tm.Cycle) == 1
    assert count(eid, tm.Channel) == 2
    assert count(eid, tm.Site) == 2
    expected = expected_planes(simulated(first), first)
    expected.update(expected_planes(simulated(second), second, tpoint_offset=2))
    assert {key[6] for key in expected} == {0, 1, 2}
    assert_converted(eid, expected)


def test_multiplexing_mode_gives_a_cycle_and_channels_per_acquisition(tmaps, simulated):
    first = spec_of("cellvoyager", wells=1, sites=2, seed=1)
    second = spec_of("cellvoyager", wells=1, sites=2, seed=2)
    eid = new_experiment("cellvoyager", mode="multiplexing")
    add_acquisition(eid, "cycle0", simulated(first))
    add_acquisition(eid, "cycle1", simulated(second))
    run_stage(eid)
    with tm.utils.ExperimentSession(eid) as session:
        cycles = session.scalars(sa.select(tm.Cycle.index)).all()
        channels = session.execute(sa.select(tm.Channel.name, tm.Channel.wavelength)).all()
    assert sorted(cycles) == [0, 1]
    assert sorted(channels) == [
        ("0_A01_C01", "A01_C01"), ("0_A01_C02", "A01_C02"),
        ("1_A01_C01", "A01_C01"), ("1_A01_C02", "A01_C02"),
    ]  # fmt: skip
    assert count(eid, tm.Site) == 2
    expected = expected_planes(simulated(first), first, channel_prefix="0_")
    expected.update(expected_planes(simulated(second), second, cycle=1, channel_prefix="1_"))
    assert_converted(eid, expected)


# ------------------------------------------------------------ 3. idempotency


def test_running_the_stage_twice_gives_the_same_result(tmaps, simulated):
    spec = spec_of("visiview", wells=2, sites=2, zplanes=2, tpoints=2)
    src = simulated(spec)
    eid = new_experiment("visiview")
    add_acquisition(eid, "acq", src)
    run_stage(eid, metaconfig=grid_args(spec))
    first = snapshot(eid)
    run_stage(eid, metaconfig=grid_args(spec))
    assert snapshot(eid) == first
    assert first[0] == ("counts", 2, 4, 2, 1, spec.n_images)
    assert_converted(eid, expected_planes(src, spec))
    assert_no_leftovers(eid)


# ------------------------------------------------------------- 4. bad input


@dataclass
class BadInput:
    """A way to break a good acquisition, and the failure it must give.

    ``breaks(src, eid)`` spoils the (private) source directory or the
    experiment and returns metaconfig arguments to change; ``fixes(src,
    eid)`` undoes it and returns the arguments to change for the clean run.
    """

    id: str
    microscope: str
    step: str
    phase: str
    message: str  # a regex the error must match; {file} is the spoiled file's name
    breaks: Callable[[Path, int], dict]
    fixes: Callable[[Path, int], dict]


def _spoil(name: str, content: Callable[[bytes], bytes]):
    backup: dict[str, bytes] = {}

    def breaks(src: Path, eid: int) -> dict:
        backup[name] = (src / name).read_bytes()
        (src / name).write_bytes(content(backup[name]))
        return {}

    def fixes(src: Path, eid: int) -> dict:
        (src / name).write_bytes(backup[name])
        return {}

    return breaks, fixes


CV = spec_of("cellvoyager", wells=1, sites=2)
CV_FILE = cv_sim.image_filename(CV.prefix, "A01", 1, 1, 0, 0)
TIFF = spec_of("tiff", wells=1, sites=2)
TIFF_FILE = tiff_sim.image_filename(TIFF.prefix, "A01", 1, 0, 0, 0)
TIFF_ARGS = grid_args(TIFF)
MISSING = cv_sim.image_filename(CV.prefix, "A01", 5, 0, 0, 0)


def _mlf_with_missing_file():
    original: dict[str, str] = {}

    def breaks(src: Path, eid: int) -> dict:
        mlf = src / "MeasurementData.mlf"
        text = original["mlf"] = mlf.read_text()
        record = re.search(r"<bts:MeasurementRecord [^>]*>[^<]*</bts:MeasurementRecord>", text)
        extra = re.sub(r">[^<]*<", f">{MISSING}<", record.group(0))
        extra = extra.replace('bts:FieldIndex="1"', 'bts:FieldIndex="6"')
        mlf.write_text(text.replace("</bts:MeasurementData>", extra + "</bts:MeasurementData>"))
        return {}

    def fixes(src: Path, eid: int) -> dict:
        (src / "MeasurementData.mlf").write_text(original["mlf"])
        return {}

    return breaks, fixes


def _to_uint8(data: bytes) -> bytes:
    """The TIFF `data` as an 8-bit TIFF of the same pixels (scaled down)."""
    out = io.BytesIO()
    tifffile.imwrite(out, (tifffile.imread(io.BytesIO(data)) // 256).astype(np.uint8))
    return out.getvalue()


BAD_INPUTS = [
    BadInput(
        "corrupt-tiff", "cellvoyager", "metaextract", "run", r"cannot read image file .*{file}",
        *_spoil(CV_FILE, lambda data: b"this is no TIFF\n" * 40),
    ),
    BadInput(
        "truncated-tiff", "cellvoyager", "metaextract", "run", r"{file} is truncated",
        *_spoil(CV_FILE, lambda data: data[: len(data) // 2]),
    ),
    BadInput(
        "empty-file", "tiff", "metaextract", "run", r"cannot read image file .*{file}",
        *_spoil(TIFF_FILE, lambda data: b""),
    ),
    BadInput(
        "mlf-names-missing-file", "cellvoyager", "metaconfig", "run",
        rf"names image file '{MISSING}', which is not registered",
        *_mlf_with_missing_file(),
    ),
    BadInput(
        "regex-without-groups", "tiff", "metaconfig", "init",
        r"lacks the named group\(s\) 'c' \(channel name\), 's' \(site",
        lambda src, eid: {"regex": r"(?P<w>[A-Z]\d{2})_s\d+_c\d+"},
        lambda src, eid: {},
    ),
    BadInput(
        "mixed-bit-depths", "tiff", "metaconfig", "run",
        r"mixed bit depths in one acquisition \(8-bit: {file}, 16-bit: ",
        *_spoil(TIFF_FILE, _to_uint8),
    ),
]  # fmt: skip


def _bad_input_params() -> list:
    return [pytest.param(bad, id=bad.id) for bad in BAD_INPUTS]


def _good_experiment(bad: BadInput, simulated, tmp_path: Path) -> tuple[Path, int, dict]:
    spec = CV if bad.microscope == "cellvoyager" else TIFF
    src = private_copy(simulated(spec), tmp_path / "src")
    eid = new_experiment(bad.microscope)
    add_acquisition(eid, "acq", src)
    args = {} if bad.microscope == "cellvoyager" else TIFF_ARGS
    run_stage(eid, metaconfig=args)
    return src, eid, args


@sqlite_only
@pytest.mark.parametrize("bad", _bad_input_params())
def test_bad_input_fails_naming_the_problem_and_a_fixed_input_runs(
    tmaps, simulated, tmp_path: Path, bad: BadInput
):
    src, eid, args = _good_experiment(bad, simulated, tmp_path)
    good = snapshot(eid)
    step, phase, err = stage_failure(eid, metaconfig={**args, **bad.breaks(src, eid)})
    assert (step, phase) == (bad.step, bad.phase), err
    file = CV_FILE if bad.microscope == "cellvoyager" else TIFF_FILE
    assert re.search(bad.message.replace("{file}", re.escape(file)), str(err)), str(err)
    run_stage(eid, metaconfig={**args, **bad.fixes(src, eid)})
    assert snapshot(eid) == good
    assert_no_leftovers(eid)


@sqlite_only
@pytest.mark.parametrize("bad", _bad_input_params())
def test_bad_input_leaves_the_existing_data_unchanged(
    tmaps, simulated, tmp_path: Path, bad: BadInput
):
    src, eid, args = _good_experiment(bad, simulated, tmp_path)
    good = snapshot(eid)
    stage_failure(eid, metaconfig={**args, **bad.breaks(src, eid)})
    assert snapshot(eid) == good


@sqlite_only
def test_truncated_multipage_tiff_fails_naming_the_file(tmaps, simulated, tmp_path: Path):
    """A VisiView z-stack cut after its first page: metaextract or metaconfig names it."""
    spec = spec_of("visiview", wells=1, sites=1, channels=1, zplanes=3)
    src = private_copy(simulated(spec), tmp_path / "src")
    name = vv_sim.image_filename(spec.prefix, "A01", 0, 0, 0, timelapse=False)
    with tifffile.TiffFile(src / name) as tif:
        first = tif.pages[0]
        end = first.dataoffsets[0] + first.databytecounts[0]
    data = (src / name).read_bytes()
    (src / name).write_bytes(data[:end])
    eid = new_experiment("visiview")
    add_acquisition(eid, "acq", src)
    step, _, err = stage_failure(eid, metaconfig=grid_args(spec))
    assert step in ("metaextract", "metaconfig")
    assert name in str(err)
    (src / name).write_bytes(data)
    run_stage(eid, metaconfig=grid_args(spec))
    assert_converted(eid, expected_planes(src, spec))


@sqlite_only
def test_registered_file_missing_on_disk_fails_naming_it(tmaps, simulated, tmp_path: Path):
    src = private_copy(simulated(CV), tmp_path / "src")
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "acq", src)
    data = (src / CV_FILE).read_bytes()
    (src / CV_FILE).unlink()
    step, phase, err = stage_failure(eid)
    assert (step, phase) == ("metaextract", "run")
    assert re.search(rf"image file .*{re.escape(CV_FILE)} does not exist", str(err)), str(err)
    (src / CV_FILE).write_bytes(data)
    run_stage(eid)
    assert_converted(eid, expected_planes(src, CV))


@sqlite_only
def test_file_names_the_regex_does_not_match_name_the_file(tmaps, simulated, tmp_path: Path):
    """Generic TIFFs named another way: the default regex fails naming a file, --regex fixes it."""
    original = simulated(TIFF)
    src = tmp_path / "src"
    src.mkdir()
    renamed = {}
    for path in sorted(original.glob("*.tif")):
        well, site, channel = re.match(r"Sim_(\w+)_s(\d+)_c(\d+)_z0_t0\.tif", path.name).groups()
        renamed[path.name] = f"{well}-field{site}-wave{channel}.tif"
        shutil.copyfile(path, src / renamed[path.name])
    eid = new_experiment("tiff")
    add_acquisition(eid, "acq", src)
    step, phase, err = stage_failure(eid, metaconfig=TIFF_ARGS)
    assert (step, phase) == ("metaconfig", "run")
    assert re.search(r"file name '(A01-field\d-wave\d\.tif)' does not match", str(err)), str(err)
    regex = r"(?P<w>[A-Z]\d{2})-field(?P<s>\d+)-wave(?P<c>\d+)\.tif"
    run_stage(eid, metaconfig={**TIFF_ARGS, "regex": regex})
    expected = {
        key: [(src / renamed[path.name], page) for path, page in sources]
        for key, sources in expected_planes(original, TIFF).items()
    }
    assert_converted(eid, expected)


@sqlite_only
def test_mixed_bit_depths_between_acquisitions_fail_in_collect(tmaps, simulated, tmp_path: Path):
    src16 = simulated(TIFF)
    src8 = private_copy(src16, tmp_path / "src8")
    for path in src8.glob("*.tif"):
        path.write_bytes(_to_uint8(path.read_bytes()))
    eid = new_experiment("tiff")
    add_acquisition(eid, "acq16", src16)
    add_acquisition(eid, "acq8", src8)
    step, phase, err = stage_failure(eid, metaconfig=TIFF_ARGS)
    assert (step, phase) == ("metaconfig", "collect")
    assert "all channels must have one bit depth, found [8, 16]" in str(err)
    assert count(eid, tm.ChannelImageFile) == 0


@sqlite_only
def test_cellvoyager_file_of_another_bit_depth_is_rejected(tmaps, simulated, tmp_path: Path):
    src = private_copy(simulated(CV), tmp_path / "src")
    (src / CV_FILE).write_bytes(_to_uint8((src / CV_FILE).read_bytes()))
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "acq", src)
    step, _, err = stage_failure(eid)
    assert CV_FILE in str(err) and "bit depth" in str(err)


@sqlite_only
def test_experiment_without_acquisitions_or_files_fails_in_metaextract_init(
    tmaps, simulated, tmp_path: Path
):
    eid = new_experiment("cellvoyager")
    with pytest.raises(InvalidInputError, match=rf"experiment {eid} has no acquisitions"):
        get_step("metaextract")(eid).init({})
    registry.add_acquisition(eid, PLATE, "empty")
    with pytest.raises(InvalidInputError, match="acquisition 'empty' of plate 'plate' has no"):
        get_step("metaextract")(eid).init({})
    registry.register_files(eid, PLATE, "empty", simulated(CV))
    run_stage(eid)
    assert_converted(eid, expected_planes(simulated(CV), CV))
    # an empty acquisition added later: the earlier result stays as it is
    good = snapshot(eid)
    registry.add_acquisition(eid, PLATE, "later")
    with pytest.raises(InvalidInputError, match="acquisition 'later' of plate 'plate' has no"):
        get_step("metaextract")(eid).init({})
    assert snapshot(eid) == good


@sqlite_only
def test_metaextract_command_line_fails_naming_the_file(tmaps, simulated, tmp_path: Path):
    src = private_copy(simulated(CV), tmp_path / "src")
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "acq", src)
    (src / CV_FILE).write_bytes(b"garbage" * 100)
    n = get_step("metaextract")(eid).init({"batch_size": 100})
    assert n == 1
    proc = subprocess.run(
        [BIN / "metaextract", str(eid), "run", "-j", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "JOB FAILED" in proc.stderr
    assert CV_FILE in proc.stderr
    assert "JOB COMPLETED" not in proc.stdout


@sqlite_only
def test_job_log_of_a_bad_input_failure_has_the_traceback(tmaps, simulated, tmp_path: Path):
    src = private_copy(simulated(CV), tmp_path / "src")
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "acq", src)
    (src / CV_FILE).write_bytes(b"garbage" * 100)
    # one job, so job 1 reads the bad file (automatic batch sizes split by the cores)
    assert get_step("metaextract")(eid).init({"batch_size": 100}) == 1
    proc = subprocess.run(
        [BIN / "metaextract", "-vv", str(eid), "run", "-j", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


@sqlite_only
def test_imextract_job_that_crashes_exits_1_with_traceback(tmaps, simulated):
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "acq", simulated(CV))
    run_step(eid, "metaextract")
    run_step(eid, "metaconfig")
    step = get_step("imextract")(eid)
    step.init({})
    with tm.utils.ExperimentSession(eid) as session:
        images = Path(session.scalars(sa.select(tm.Channel)).first().image_files_location)
    images.parent.mkdir(parents=True, exist_ok=True)
    images.write_text("a file where the directory of HDF5 planes belongs")
    command = [BIN / "imextract", str(eid), "run", "-j", "1"]
    by_hand = subprocess.run(command, capture_output=True, text=True)
    assert by_hand.returncode == 1, by_hand.stderr
    assert by_hand.stderr.count("\n") == 1 and "JOB FAILED" in by_hand.stderr  # one line
    as_job = {**os.environ, "TMAPS_JOB": "imextract_run_0000001"}  # as the backends start it
    proc = subprocess.run(command, capture_output=True, text=True, env=as_job)
    assert proc.returncode == 1, proc.stderr
    assert "JOB FAILED" in proc.stderr
    assert "Traceback" in proc.stderr
    assert str(images) in proc.stderr
    images.unlink()
    run_step(eid, "imextract")
    assert_converted(eid, expected_planes(simulated(CV), CV))


# ------------------------------------------------------- 5. imextract --delete


@sqlite_only
def test_delete_removes_copied_files_but_never_linked_sources(tmaps, simulated, tmp_path: Path):
    first = spec_of("cellvoyager", wells=1, sites=2, seed=1)
    second = spec_of("cellvoyager", wells=1, sites=2, seed=2)
    copied_src = private_copy(simulated(first), tmp_path / "copied")
    linked_src = private_copy(simulated(second), tmp_path / "linked")
    before = {p: p.read_bytes() for p in files_under(copied_src) + files_under(linked_src)}
    eid = new_experiment("cellvoyager")
    add_acquisition(eid, "copied", copied_src, copy=True)
    add_acquisition(eid, "linked", linked_src)
    with tm.utils.ExperimentSession(eid) as session:
        acquisitions = {a.name: a for a in session.scalars(sa.select(tm.Acquisition))}
        copies = Path(acquisitions["copied"].microscope_images_location)
        link_dir = Path(acquisitions["linked"].sources_location)
        linked = [
            Path(f.location)
            for f in acquisitions["linked"].microscope_image_files
            if f.source is not None
        ]
    assert len(files_under(copies)) == first.n_images
    assert len(linked) == second.n_images

    run_stage(eid, imextract={"delete": True})

    assert files_under(copies) == []
    assert all(path.is_file() for path in linked)  # reachable through the link
    assert {p: p.read_bytes() for p in before} == before  # no source file touched
    assert link_dir.is_dir() and any(p.is_symlink() for p in link_dir.iterdir())
    expected = expected_planes(copied_src, first)
    expected.update(expected_planes(linked_src, second, tpoint_offset=1))
    assert_converted(eid, expected)


# ------------------------------------------------------- tm_workflow, end to end


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tmaps", "microscope"),
    [
        ("sqlite", "cellvoyager"),
        ("sqlite", "metamorph"),
        ("sqlite", "tiff"),
        pytest.param("postgresql", "visiview", marks=pytest.mark.postgres),
    ],
    indirect=["tmaps"],
)
def test_tm_workflow_submit_converts_a_simulated_plate(tmaps, microscope, simulated):
    """A real submission for every microscope type (VisiView on PostgreSQL)."""
    stacks = {} if microscope == "metamorph" else {"zplanes": 2, "tpoints": 2}
    spec = spec_of(microscope, **stacks)
    src = simulated(spec)
    eid = new_experiment(microscope)
    add_acquisition(eid, "acq", src)
    description = WorkflowDescription.default("canonical")
    description.stages = description.stages[:1]  # image_conversion only
    for stage in description.stages:
        for step in stage.steps:
            if step.name == "metaconfig" and microscope != "cellvoyager":
                step.batch_args.update(grid_args(spec))
    description.save(manager.description_path(eid))
    proc = subprocess.run(
        [BIN / "tm_workflow", str(eid), "submit"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all jobs succeeded" in proc.stdout
    assert count(eid, tm.Site) == spec.wells * spec.sites
    assert_converted(eid, expected_planes(src, spec))
    assert_no_leftovers(eid)
