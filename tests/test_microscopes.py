"""Microscope metadata readers, the regex fallback and the site grid.

Every microscope type is round-tripped: ``tm_simulate plate`` writes a plate
in the vendor's layout, ``tm_add``'s patterns pick its files, the type's
reader turns them into plane records, and the records must describe exactly
the simulated planes, with site grid positions equal to the ground truth.
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
from pathlib import Path

import pytest
import tifffile
from click.testing import CliRunner
from helpers import use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.cli.simulate import main as tm_simulate
from tmlib.errors import InvalidInputError
from tmlib.microscopes import MICROSCOPE_TYPES, MicroscopeType, get_microscope_type
from tmlib.microscopes.base import (
    PlaneRecord,
    apply_regex,
    compile_regex,
    normalize_well,
    parse_filename,
)
from tmlib.microscopes.cellvoyager import CellVoyagerReader
from tmlib.microscopes.grid import (
    SiteLocation,
    cluster_values,
    layout_position,
    site_grid_positions,
    stage_tolerance,
)
from tmlib.microscopes.metamorph import MetaMorphReader
from tmlib.microscopes.tiff import TiffReader
from tmlib.microscopes.visiview import VisiViewReader, parse_stage_name, read_nd
from tmlib.models.experiment import well_name
from tmlib.simulate import PlateSpec, simulate_plate, site_grid
from tmlib.simulate import cellvoyager as cv_writer
from tmlib.simulate import metamorph as mm_writer
from tmlib.simulate import tiff as tiff_writer
from tmlib.simulate import visiview as vv_writer

WELLS, SITES, CHANNELS, ZPLANES, TPOINTS = 2, 6, 2, 2, 2  # 6 sites: a 2x3 grid, not square

#: Planes the simulator writes per type (MetaMorph names hold no z or t).
DIMENSIONS = {
    "cellvoyager": (ZPLANES, TPOINTS),
    "visiview": (ZPLANES, TPOINTS),
    "metamorph": (1, 1),
    "tiff": (ZPLANES, TPOINTS),
}

#: Channel names the reader gives the simulator's channels 0, 1.
CHANNEL_NAMES = {
    "cellvoyager": ["A01_C01", "A01_C02"],
    "visiview": ["CSU405", "CSU488"],
    "metamorph": ["1", "2"],
    "tiff": ["0", "1"],
}

#: Types whose metadata hold stage positions.
WITH_STAGE = {"cellvoyager"}


@pytest.fixture(scope="module")
def plates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small simulated plate per microscope type (64x64 px, real pixels)."""
    root = tmp_path_factory.mktemp("plates")
    out = {}
    for name, (zplanes, tpoints) in DIMENSIONS.items():
        spec = PlateSpec(
            microscope=name,
            wells=WELLS,
            sites=SITES,
            channels=CHANNELS,
            zplanes=zplanes,
            tpoints=tpoints,
            height=64,
            width=80,
            seed=5,
        )
        simulate_plate(root / name, spec)
        out[name] = root / name
    return out


def registered(outdir: Path, mtype: MicroscopeType) -> tuple[list[Path], list[Path], list[str]]:
    """What ``tm_add files`` would register: image paths, metadata paths, skipped names."""
    images, metadata, skipped = [], [], []
    for path in sorted(p for p in outdir.iterdir() if p.is_file()):
        if mtype.is_image(path.name):
            images.append(path)
        elif mtype.is_metadata(path.name):
            metadata.append(path)
        else:
            skipped.append(path.name)
    return images, metadata, skipped


def ground_truth_sites(outdir: Path) -> list[dict[str, str]]:
    with open(outdir / "ground_truth" / "sites.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def expected_filename(mtype: str, record: PlaneRecord) -> str:
    """The name the simulator gives the plane a record describes."""
    channel = CHANNEL_NAMES[mtype].index(record.channel)
    if mtype == "cellvoyager":
        return cv_writer.image_filename(
            "Sim", record.well, record.site, channel, record.zplane, record.tpoint
        )
    if mtype == "visiview":
        stage = (int(record.well[1:]) - 1) * SITES + record.site
        return vv_writer.image_filename(
            "Sim", record.well, stage, channel, record.tpoint, timelapse=True
        )
    if mtype == "metamorph":
        return mm_writer.image_filename(
            "Sim", record.well, record.site, channel, channels=CHANNELS, seed=5
        )
    return tiff_writer.image_filename(
        "Sim", record.well, record.site, channel, record.zplane, record.tpoint
    )


# --- round trips -------------------------------------------------------------


@pytest.mark.parametrize("mtype", sorted(DIMENSIONS))
def test_reader_gives_one_record_per_simulated_plane(plates: dict[str, Path], mtype: str):
    outdir = plates[mtype]
    microscope = get_microscope_type(mtype)
    images, metadata, skipped = registered(outdir, microscope)
    if mtype == "metamorph":
        assert skipped and all("_thumb" in name for name in skipped)
    else:
        assert skipped == []
    assert [p.name for p in metadata] == {
        "cellvoyager": ["MeasurementData.mlf", "MeasurementDetail.mrf"],
        "visiview": ["Sim.nd"],
    }.get(mtype, [])

    records = microscope.read(images, metadata)
    zplanes, tpoints = DIMENSIONS[mtype]
    assert len(records) == WELLS * SITES * CHANNELS * zplanes * tpoints
    keys = {(r.well, r.site, r.channel, r.tpoint, r.zplane) for r in records}
    assert keys == {
        (w, s, c, t, z)
        for w in ("A01", "A02")
        for s in range(SITES)
        for c in CHANNEL_NAMES[mtype]
        for t in range(tpoints)
        for z in range(zplanes)
    }
    assert {r.filename for r in records} == {p.name for p in images}
    for record in records:
        assert record.filename == expected_filename(mtype, record)
        assert record.series == 0
    assert records == sorted(records, key=lambda r: (r.filename, r.series, r.plane))

    if mtype == "visiview":  # one multi-page TIFF per z-stack
        assert len(images) == WELLS * SITES * CHANNELS * TPOINTS
        assert all(r.plane == r.zplane for r in records)
        with tifffile.TiffFile(images[0]) as tif:
            assert len(tif.pages) == ZPLANES
    else:
        assert len(images) == len(records)
        assert all(r.plane == 0 for r in records)

    if mtype == "cellvoyager":
        assert all((r.height, r.width, r.bit_depth) == (64, 80, 16) for r in records)
    else:
        assert all(r.height is r.width is r.bit_depth is None for r in records)
        assert all(r.stage_x is r.stage_y is None for r in records)


@pytest.mark.parametrize("mtype", sorted(DIMENSIONS))
def test_grid_positions_equal_the_ground_truth(plates: dict[str, Path], mtype: str):
    outdir = plates[mtype]
    microscope = get_microscope_type(mtype)
    images, metadata, _ = registered(outdir, microscope)
    records = microscope.read(images, metadata)
    truth = {
        (row["well"], int(row["site"])): (int(row["grid_row"]), int(row["grid_column"]))
        for row in ground_truth_sites(outdir)
    }
    assert len(truth) == WELLS * SITES
    if mtype in WITH_STAGE:
        assert site_grid_positions(records) == truth  # no grid size needed
    else:
        # without a grid size: the same near-square grid the simulator chose
        assert site_grid_positions(records) == truth
        rows, cols = site_grid(SITES)
        assert (rows, cols) == (2, 3)
        assert site_grid_positions(records, "horizontal", rows, cols) == truth


def test_cellvoyager_stage_positions_point_along_image_rows(plates: dict[str, Path]):
    outdir = plates["cellvoyager"]
    images, metadata, _ = registered(outdir, MICROSCOPE_TYPES["cellvoyager"])
    records = CellVoyagerReader().read(images, metadata)
    truth = {(r["well"], int(r["site"])): r for r in ground_truth_sites(outdir)}
    for record in records:
        row = truth[record.well, record.site]
        assert record.stage_x == pytest.approx(float(row["stage_x_um"]))
        assert record.stage_y == pytest.approx(-float(row["stage_y_um"]))  # flipped: y down
    top = [r for r in records if r.site == 0 and r.well == "A01"]
    bottom = [r for r in records if r.site == SITES - 1 and r.well == "A01"]
    assert top[0].stage_y < bottom[0].stage_y


def test_cellvoyager_without_mlf_reads_the_names(plates: dict[str, Path]):
    outdir = plates["cellvoyager"]
    images, metadata, _ = registered(outdir, MICROSCOPE_TYPES["cellvoyager"])
    from_mlf = CellVoyagerReader().read(images, metadata)
    mrf_only = [p for p in metadata if p.suffix == ".mrf"]
    from_names = CellVoyagerReader().read(images, mrf_only)
    strip = [
        (r.filename, r.well, r.site, r.channel, r.tpoint, r.zplane, r.height, r.bit_depth)
        for r in from_mlf
    ]
    assert strip == [
        (r.filename, r.well, r.site, r.channel, r.tpoint, r.zplane, r.height, r.bit_depth)
        for r in from_names
    ]
    assert all(r.stage_y is None for r in from_names)


def test_simulator_output_matches_tm_add_patterns_only_for_its_type(plates: dict[str, Path]):
    for mtype, outdir in plates.items():
        images, _, _ = registered(outdir, MICROSCOPE_TYPES[mtype])
        for other in ("cellvoyager", "visiview", "metamorph"):
            if other != mtype:
                assert not any(MICROSCOPE_TYPES[other].is_image(p.name) for p in images), (
                    mtype,
                    other,
                )


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_tm_add_registers_what_each_writer_wrote_and_the_reader_reads_it(
    tmaps, plates: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    use_fast_password_hashing(monkeypatch)
    registry.add_user("alice", "pw", "alice@example.org")
    for mtype, outdir in plates.items():
        experiment = registry.add_experiment(f"exp-{mtype}", "alice", microscope_type=mtype)
        registry.add_plate(experiment, "plate")
        registry.add_acquisition(experiment, "plate", "acq")
        result = registry.register_files(experiment, "plate", "acq", outdir)
        images, metadata, skipped = registered(outdir, MICROSCOPE_TYPES[mtype])
        assert result.images == [p.name for p in images]
        assert result.metadata == [p.name for p in metadata]
        assert result.skipped == skipped
        with tm.utils.ExperimentSession(experiment) as session:
            acq = registry.find_acquisition(session, "plate", "acq")
            image_paths = [Path(f.location) for f in acq.microscope_image_files]
            metadata_paths = [Path(f.location) for f in acq.microscope_metadata_files]
        assert all(p.exists() for p in image_paths + metadata_paths)
        records = get_microscope_type(mtype).read(image_paths, metadata_paths)
        zplanes, tpoints = DIMENSIONS[mtype]
        assert len(records) == WELLS * SITES * CHANNELS * zplanes * tpoints


def test_metamorph_names_are_reproducible_and_single_channel_has_no_w(tmp_path: Path):
    spec = PlateSpec(microscope="metamorph", wells=1, sites=2, channels=1, empty=True, seed=3)
    simulate_plate(tmp_path / "a", spec)
    simulate_plate(tmp_path / "b", spec)
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir() if p.is_file())
    images, _, thumbnails = registered(tmp_path / "a", MICROSCOPE_TYPES["metamorph"])
    assert all("_w" not in p.name for p in images) and len(thumbnails) == 2
    records = MetaMorphReader().read(images + [tmp_path / "a" / n for n in thumbnails], [])
    assert [(r.site, r.channel) for r in records] == [(0, "1"), (1, "1")]  # thumbnails ignored


def test_metamorph_writer_rejects_z_stacks_and_time_series(tmp_path: Path):
    result = CliRunner().invoke(
        tm_simulate,
        ["plate", str(tmp_path / "out"), "--microscope", "metamorph", "--zplanes", "2"],
        prog_name="tm_simulate",
    )
    assert result.exit_code == 2
    assert "z-plane" in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --- CellVoyager: bad input ----------------------------------------------------


@pytest.fixture
def cv_copy(plates: dict[str, Path], tmp_path: Path) -> tuple[list[Path], Path, Path]:
    """Image paths (not copied: readers only use names) and copies of mlf and mrf."""
    outdir = plates["cellvoyager"]
    images, _, _ = registered(outdir, MICROSCOPE_TYPES["cellvoyager"])
    mlf = tmp_path / "MeasurementData.mlf"
    mrf = tmp_path / "MeasurementDetail.mrf"
    shutil.copy(outdir / mlf.name, mlf)
    shutil.copy(outdir / mrf.name, mrf)
    return images, mlf, mrf


def read_cv(images: list[Path], *metadata: Path) -> list[PlaneRecord]:
    return CellVoyagerReader().read(images, list(metadata))


def test_truncated_or_corrupt_xml_is_one_clear_error(cv_copy):
    images, mlf, mrf = cv_copy
    text = mlf.read_text(encoding="utf-8")
    mlf.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"MeasurementData\.mlf: not valid XML at line"):
        read_cv(images, mlf, mrf)
    mlf.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not valid XML"):
        read_cv(images, mlf, mrf)
    mrf.write_bytes(b"\x00\xffgarbage")
    with pytest.raises(InvalidInputError, match=r"MeasurementDetail\.mrf: not valid XML"):
        read_cv(images, mrf)


def test_wrong_root_element_is_rejected(cv_copy):
    images, mlf, mrf = cv_copy
    with pytest.raises(InvalidInputError, match="root element is 'MeasurementDetail'"):
        read_cv(images, mrf.rename(mrf.with_name("swapped.mlf")))


def test_mlf_naming_an_unregistered_file_names_the_first_missing(cv_copy):
    images, mlf, mrf = cv_copy
    missing = images[3]
    with pytest.raises(InvalidInputError) as err:
        read_cv([p for p in images if p != missing and p != images[7]], mlf, mrf)
    message = str(err.value)
    assert missing.name in message and "not registered" in message and "\n" not in message


def test_registered_file_without_record_is_an_error(cv_copy):
    images, mlf, mrf = cv_copy
    extra = images[0].with_name("Sim_C03_T0001F001L01A01Z01C01.tif")
    with pytest.raises(InvalidInputError, match=f"no metadata record for {extra.name}"):
        read_cv([*images, extra], mlf, mrf)


def test_err_records_are_skipped(cv_copy, caplog: pytest.LogCaptureFixture):
    images, mlf, mrf = cv_copy
    failed = images[0].name
    text = mlf.read_text(encoding="utf-8")
    # a failed plane: its record turns to ERR, and an ERR record for a never-written file
    text = re.sub(
        rf'<bts:MeasurementRecord bts:Type="IMG"([^>]*)>{re.escape(failed)}<',
        rf'<bts:MeasurementRecord bts:Type="ERR"\1>{failed}<',
        text,
    )
    text = text.replace(
        "</bts:MeasurementData>",
        '<bts:MeasurementRecord bts:Type="ERR" bts:Time="x">Acquisition failed</bts:'
        "MeasurementRecord>\r\n</bts:MeasurementData>",
    )
    mlf.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        records = read_cv(images, mlf, mrf)
    assert len(records) == len(images) - 1
    assert failed not in {r.filename for r in records}
    assert failed in caplog.text


def test_record_without_required_attribute_names_the_record(cv_copy):
    images, mlf, mrf = cv_copy
    text = mlf.read_text(encoding="utf-8")
    mlf.write_text(text.replace(' bts:Row="1"', "", 1), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"record 1 has no attribute Row"):
        read_cv(images, mlf, mrf)
    mlf.write_text(text.replace(' bts:X="', ' bts:X="a', 1), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"record 1 has X='a"):
        read_cv(images, mlf, mrf)


def test_mixed_bit_depths_in_mrf_are_rejected(cv_copy):
    images, mlf, mrf = cv_copy
    text = mrf.read_text(encoding="utf-8")
    head, sep, tail = text.partition('bts:Ch="2"')
    mrf.write_text(
        head + sep + tail.replace('bts:InputBitDepth="16"', 'bts:InputBitDepth="12"', 1),
        encoding="utf-8",
    )
    with pytest.raises(InvalidInputError, match=r"MeasurementDetail\.mrf: .*bit depths \(12, 16\)"):
        read_cv(images, mlf, mrf)


def test_two_mlf_files_are_rejected(cv_copy):
    images, mlf, mrf = cv_copy
    second = mlf.with_name("Other.mlf")
    shutil.copy(mlf, second)
    with pytest.raises(InvalidInputError, match="at most one .mlf"):
        read_cv(images, mlf, second, mrf)


def test_tif_renamed_to_png_is_matched_by_stem(cv_copy):
    images, mlf, mrf = cv_copy
    renamed = [p.with_suffix(".png") for p in images]
    assert all(MICROSCOPE_TYPES["cellvoyager"].is_image(p.name) for p in renamed)
    records = read_cv(renamed, mlf, mrf)
    assert {r.filename for r in records} == {p.name for p in renamed}
    assert {r.well for r in records} == {"A01", "A02"}


# --- VisiView ------------------------------------------------------------------


def test_visiview_without_nd_gives_one_plane_per_file(plates: dict[str, Path]):
    images, _, _ = registered(plates["visiview"], MICROSCOPE_TYPES["visiview"])
    records = VisiViewReader().read(images, [])
    assert len(records) == len(images)
    assert {r.zplane for r in records} == {0}
    assert {r.channel for r in records} == {"CSU405", "CSU488"}
    # without Stage entries the well comes from the name and the site is the stage number
    assert {(r.well, r.site) for r in records if r.well == "A02"} == {
        ("A02", s) for s in range(SITES, 2 * SITES)
    }


def write_nd(path: Path, *lines: str) -> Path:
    path.write_text("\r\n".join(['"NDInfoFile", Version 1.0', *lines, '"EndFile"']) + "\r\n")
    return path


def test_visiview_nd_variants(tmp_path: Path):
    nd = write_nd(
        tmp_path / "exp.nd",
        '"DoTimelapse", FALSE',
        '"DoStage", TRUE',
        '"NStagePositions", 4',
        '"Stage1", "B03 : 7"',
        '"Stage2", "B03 : 5"',
        '"Stage3", "row:3,column:1,site:9"',
        '"Stage4", "Position 4"',
        '"DoWave", TRUE',
        '"NWavelengths", 2',
        '"WaveName1", "GFP"',
        '"WaveDoZ1", TRUE',
        '"WaveName2", ""',
        '"WaveDoZ2", FALSE',
        '"DoZSeries", TRUE',
        '"NZSteps", 3',
        '"WaveInFileName", TRUE',
    )
    names = ["exp_w1GFP_s1.TIF", "exp_w1GFP_s2.TIF", "exp_w2_s3.tif", "exp_C05_w2_s4.tif"]
    records = VisiViewReader().read([tmp_path / n for n in names], [nd])
    got = {(r.filename, r.well, r.site, r.channel, r.zplane, r.plane) for r in records}
    assert got == {
        *{("exp_w1GFP_s1.TIF", "B03", 1, "GFP", z, z) for z in range(3)},  # site 7 > 5: rank 1
        *{("exp_w1GFP_s2.TIF", "B03", 0, "GFP", z, z) for z in range(3)},
        ("exp_w2_s3.tif", "C01", 0, "w2", 0, 0),  # WaveDoZ2 FALSE: one plane
        ("exp_C05_w2_s4.tif", "C05", 3, "w2", 0, 0),  # stage name holds no well
    }
    with pytest.raises(InvalidInputError, match="stage position 5 is beyond the 4"):
        VisiViewReader().read([tmp_path / "exp_w1GFP_s5.TIF"], [nd])
    with pytest.raises(InvalidInputError, match="the name says well A01"):
        VisiViewReader().read([tmp_path / "exp_A01_w1GFP_s1.TIF"], [nd])
    with pytest.raises(InvalidInputError, match="no metadata record for other_w1GFP_s1.TIF"):
        VisiViewReader().read([tmp_path / "other_w1GFP_s1.TIF"], [nd])


def test_bad_nd_files_name_the_file(tmp_path: Path):
    bad = tmp_path / "bad.nd"
    bad.write_text('"Description", no header\r\n')
    with pytest.raises(InvalidInputError, match=r"bad\.nd: not a \.nd file"):
        read_nd(bad)
    write_nd(bad, "DoStage TRUE")
    with pytest.raises(InvalidInputError, match=r'bad\.nd: line 2 is not "Key", value'):
        read_nd(bad)
    write_nd(bad, '"DoStage", TRUE', '"NStagePositions", many')
    with pytest.raises(InvalidInputError, match="NStagePositions is 'many'"):
        VisiViewReader().read([tmp_path / "bad_w1_s1.tif"], [bad])


def test_parse_stage_name():
    assert parse_stage_name("row:A,column:1,site:1") == ("A01", 1)
    assert parse_stage_name("row:2, column:12, site:3") == ("B12", 3)
    assert parse_stage_name("row:b,column:3") == ("B03", None)
    assert parse_stage_name("P24") == ("P24", None)
    assert parse_stage_name("Position 1") == (None, None)
    with pytest.raises(ValueError, match="names no well"):
        parse_stage_name("row:A,column:0,site:1")


# --- regexes -------------------------------------------------------------------


def test_regex_lacking_required_groups_names_them():
    with pytest.raises(InvalidInputError, match=r"'c' \(channel name\), 's'"):
        TiffReader().read([Path("x_A01.tif")], [], regex=r"(?P<w>[A-Z]\d{2})")
    with pytest.raises(InvalidInputError, match=r"lacks the named group\(s\) 'w'"):
        MetaMorphReader().read([Path("x_A01_s1.tif")], [], regex=r"_s(?P<s>\d+)")
    with pytest.raises(InvalidInputError, match="invalid regular expression"):
        compile_regex("(?P<w>", ())


def test_file_not_matching_the_regex_is_named():
    with pytest.raises(InvalidInputError, match="'notes_A01.tif' does not match"):
        TiffReader().read([Path("/data/Sim_A01_s0_c0.tif"), Path("/data/notes_A01.tif")], [])


def test_user_regex_and_defaults():
    regex = r"(?P<w>[A-Za-z]\d+)-f(?P<s>\d+)-(?P<c>[a-z]+)(?:-z(?P<z>\d+))?\.tif$"
    records = TiffReader().read([Path("r_b3-f2-dapi.tif"), Path("r_B3-f2-gfp-z4.tif")], [], regex)
    assert [(r.well, r.site, r.channel, r.zplane, r.tpoint) for r in records] == [
        ("B03", 2, "gfp", 4, 0),
        ("B03", 2, "dapi", 0, 0),
    ]
    metamorph = MetaMorphReader().read(
        [Path("P_A01_s1_t3.tif")], [], r"_(?P<w>[A-Z]\d{2})_s(?P<s>\d+)_t(?P<t>\d+)"
    )
    assert (metamorph[0].site, metamorph[0].tpoint, metamorph[0].channel) == (0, 2, "1")
    with pytest.raises(InvalidInputError, match="site number 0 is below 1"):
        MetaMorphReader().read([Path("P_A01_s0.tif")], [])


def test_two_files_claiming_one_plane_are_rejected(plates: dict[str, Path]):
    images, _, _ = registered(plates["tiff"], MICROSCOPE_TYPES["tiff"])
    no_z = r"(?P<w>[A-Z]\d{2})_s(?P<s>\d+)_c(?P<c>\d+)_z\d+_t(?P<t>\d+)"
    with pytest.raises(InvalidInputError, match=r"_z0_t0\.tif and .*_z1_t0\.tif both hold"):
        TiffReader().read(images, [], no_z)


def test_regex_helpers():
    groups = apply_regex("/x/Plate_B03_s2_cDAPI.tif", TiffReader.default_regex)
    assert groups == {"w": "B03", "s": "2", "c": "DAPI", "z": None, "t": None}
    fields = parse_filename("Plate_B03_s2_cDAPI.tif", compile_regex(TiffReader.default_regex, ()))
    assert (fields.well, fields.site, fields.channel, fields.zplane, fields.tpoint) == (
        "B03",
        2,
        "DAPI",
        0,
        0,
    )
    assert normalize_well("b3") == "B03" and normalize_well("C012") == "C12"
    assert well_name(15, 23) == "P24"  # zero-based
    for bad in ("A00", "3B", "AB1"):
        with pytest.raises(ValueError):
            normalize_well(bad)
    with pytest.raises(InvalidInputError, match="not a well name"):
        parse_filename("x_s1_c1.tif", re.compile(r"(?P<w>x)_s(?P<s>\d)_c(?P<c>\d)"))


def test_every_type_has_a_reader_and_a_default_regex_with_its_groups():
    for mtype in MICROSCOPE_TYPES.values():
        assert mtype.reader.name == mtype.name
        compile_regex(mtype.default_regex, mtype.reader.required_groups)


# --- site grid -----------------------------------------------------------------


def grid(*cells: tuple[int, int]) -> dict[tuple[str, int], tuple[int, int]]:
    return {("A01", s): cell for s, cell in enumerate(cells)}


def test_layouts():
    sites = [("A01", s) for s in range(6)]
    assert site_grid_positions(sites, "horizontal", 2, 3) == grid(
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)
    )
    assert site_grid_positions(sites, "zigzag_horizontal", 2, 3) == grid(
        (0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0)
    )
    assert site_grid_positions(sites, "vertical", 2, 3) == grid(
        (0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)
    )
    assert site_grid_positions(sites, "zigzag_vertical", 3, 2) == grid(
        (0, 0), (1, 0), (2, 0), (2, 1), (1, 1), (0, 1)
    )
    assert layout_position(4, "vertical", 4, 2) == (0, 1)


def test_layout_needs_grid_size_that_fits():
    sites = [("A01", s) for s in range(5)]
    # without a grid size (or one of them) the grid is chosen to fit
    assert site_grid_positions(sites)[("A01", 4)] == (1, 1)  # 2x3
    assert site_grid_positions(sites, n_vertical=2)[("A01", 4)] == (1, 1)  # 2x3
    assert site_grid_positions(sites, n_horizontal=2)[("A01", 4)] == (2, 0)  # 3x2
    with pytest.raises(InvalidInputError, match="n_vertical must be at least 1, got 0"):
        site_grid_positions(sites, n_vertical=0)
    with pytest.raises(InvalidInputError, match="5 sites .* 2x2 = 4"):
        site_grid_positions(sites, n_vertical=2, n_horizontal=2)
    with pytest.raises(InvalidInputError, match="unknown stitch layout 'spiral'"):
        site_grid_positions(sites, "spiral", 3, 3)


def test_stage_positions_with_jitter_on_a_non_square_grid():
    step_y, step_x = 702.0, 832.0  # 2160x2560 px at 0.325 um
    jitter = [0.31, -0.22, 0.05, -0.4, 0.17, 0.0, 0.26, -0.11]
    locations = []
    order = [(1, 3), (0, 0), (1, 0), (0, 3), (0, 1), (1, 2), (0, 2), (1, 1)]  # any site order
    for site, (row, col) in enumerate(order):
        j = jitter[site]
        locations.append(SiteLocation("B02", site, 1000 + row * step_y + j, -50 + col * step_x - j))
    assert site_grid_positions(locations) == {("B02", s): cell for s, cell in enumerate(order)}


def test_stage_positions_averaged_over_records_and_one_row_wells():
    records = [
        PlaneRecord(f"f{s}{c}.tif", "A01", s, str(c), stage_y=5.0 + 0.1 * c, stage_x=100.0 * s)
        for s in range(3)
        for c in range(2)
    ]
    records.append(PlaneRecord("g.tif", "A02", 0, "1", stage_y=0.0, stage_x=0.0))
    positions = site_grid_positions(records)
    assert positions == {
        ("A01", 0): (0, 0),
        ("A01", 1): (0, 1),
        ("A01", 2): (0, 2),
        ("A02", 0): (0, 0),
    }


def test_wells_without_stage_positions_use_the_layout():
    sites = [("A01", 0, 0.0, 0.0), ("A01", 1, 0.0, 10.0), ("A02", 0), ("A02", 1)]
    assert site_grid_positions(sites, "vertical", 2, 1) == {
        ("A01", 0): (0, 0),
        ("A01", 1): (0, 1),
        ("A02", 0): (0, 0),
        ("A02", 1): (1, 0),
    }


def test_sites_on_one_stage_position_are_rejected():
    sites = [("A01", 0, 0.0, 0.0), ("A01", 1, 0.0, 0.0), ("A02", 0, 0.0, 0.0), ("A02", 1, 0.0, 40)]
    with pytest.raises(InvalidInputError, match="well A01: sites 0 and 1 were taken at the same"):
        site_grid_positions(sites)


def test_tolerance_and_clustering():
    assert stage_tolerance([[0.0, 0.2, 40.0, 40.3, 120.0], [1.0, 1.0]]) == pytest.approx(19.9)
    assert stage_tolerance([[3.0, 3.0]]) == 0.0
    assert cluster_values([0.0, 0.2, 40.0, 40.3, 120.0], 19.0) == {
        0.0: 0,
        0.2: 0,
        40.0: 1,
        40.3: 1,
        120.0: 2,
    }
