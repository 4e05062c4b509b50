"""Tests of the plate simulator (``tm_simulate plate``) and its building blocks."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from tmlib.cli.simulate import main
from tmlib.simulate import cells as cellsim
from tmlib.simulate.plate import site_grid, well_names

NS = {"bts": "http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"}
BTS = "{" + NS["bts"] + "}"
NAME = re.compile(
    r"^(?P<prefix>[^_]+)_(?P<well>[A-P]\d{2})_T(?P<t>\d{4})F(?P<f>\d{3})"
    r"L(?P<l>\d{2})A(?P<a>\d{2})Z(?P<z>\d{2})C(?P<c>\d{2})\.tif$"
)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["plate", *args], prog_name="tm_simulate")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def simulate(outdir: Path, *args: str) -> Path:
    code, output = run(str(outdir), "-q", *args)
    assert code == 0, output
    return outdir


def image_files(outdir: Path) -> list[Path]:
    return sorted(p for p in outdir.iterdir() if p.suffix == ".tif")


def mlf_records(outdir: Path) -> list[ET.Element]:
    root = ET.parse(outdir / "MeasurementData.mlf").getroot()
    assert root.tag == BTS + "MeasurementData"
    return root.findall("bts:MeasurementRecord", NS)


def read_cells_csv(outdir: Path) -> list[dict[str, str]]:
    with open(outdir / "ground_truth" / "cells.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def all_bytes(outdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outdir)): p.read_bytes() for p in outdir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 wells x 3 sites x 3 channels x 2 z-planes x 2 time points, 64x96 px."""
    out = tmp_path_factory.mktemp("plate") / "out"
    return simulate(
        out,
        "--wells",
        "3",
        "--sites",
        "3",
        "--channels",
        "3",
        "--zplanes",
        "2",
        "--tpoints",
        "2",
        "--size",
        "64x96",
        "--seed",
        "7",
    )


@pytest.fixture(scope="module")
def default_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Defaults (2 wells x 4 sites x 2 channels) at 128x128 px."""
    out = tmp_path_factory.mktemp("plate") / "out"
    return simulate(out, "--size", "128x128", "--sites", "6")


# --- layout and metadata ---------------------------------------------------


def test_file_names_and_count_match_the_plate(small_plate: Path) -> None:
    files = image_files(small_plate)
    assert len(files) == 3 * 3 * 3 * 2 * 2
    expected = {
        f"Sim_{w}_T{t:04d}F{f:03d}L01A01Z{z:02d}C{c:02d}.tif"
        for w in ("A01", "A02", "A03")
        for t in (1, 2)
        for f in (1, 2, 3)
        for z in (1, 2)
        for c in (1, 2, 3)
    }
    assert {p.name for p in files} == expected


def test_mlf_has_one_consistent_record_per_file(small_plate: Path) -> None:
    records = mlf_records(small_plate)
    names = [r.text for r in records]
    assert sorted(names) == [p.name for p in image_files(small_plate)]
    for record in records:
        match = NAME.match(record.text)
        assert match, record.text
        attrib = {k.removeprefix(BTS): v for k, v in record.attrib.items()}
        assert attrib["Type"] == "IMG"
        well = match["well"]
        assert int(attrib["Row"]) == ord(well[0]) - ord("A") + 1
        assert int(attrib["Column"]) == int(well[1:])
        assert int(attrib["FieldIndex"]) == int(match["f"])
        assert int(attrib["TimePoint"]) == int(match["t"])
        assert int(attrib["ZIndex"]) == int(match["z"])
        assert int(attrib["Ch"]) == int(match["c"])
        assert int(attrib["ActionIndex"]) == int(match["a"])
        assert int(attrib["TimelineIndex"]) == int(match["l"])
        for key in ("X", "Y", "Z"):
            float(attrib[key])
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$", attrib["Time"])


@pytest.mark.parametrize(("fmt", "rows", "cols"), [("384", 16, 24), ("96", 8, 12)])
def test_mrf_describes_plate_format_and_channels(tmp_path: Path, fmt: str, rows: int, cols: int):
    out = simulate(
        tmp_path / "out",
        "--plate-format",
        fmt,
        "--wells",
        "1",
        "--sites",
        "1",
        "--channels",
        "3",
        "--size",
        "32x48",
    )
    root = ET.parse(out / "MeasurementDetail.mrf").getroot()
    assert root.tag == BTS + "MeasurementDetail"
    assert int(root.get(BTS + "RowCount")) == rows
    assert int(root.get(BTS + "ColumnCount")) == cols
    assert root.get(BTS + "Title") == "Sim"
    channels = root.findall("bts:MeasurementChannel", NS)
    assert [int(c.get(BTS + "Ch")) for c in channels] == [1, 2, 3]
    for channel in channels:
        assert int(channel.get(BTS + "HorizontalPixels")) == 48
        assert int(channel.get(BTS + "VerticalPixels")) == 32
        assert float(channel.get(BTS + "HorizontalPixelDimension")) > 0
        assert channel.get(BTS + "CameraNumber") is not None


def test_wells_are_taken_row_major_from_a01(tmp_path: Path) -> None:
    assert well_names(96, 14)[-3:] == ["A12", "B01", "B02"]
    assert well_names(384)[-1] == "P24"
    out = simulate(
        tmp_path / "out",
        "--plate-format",
        "96",
        "--wells",
        "13",
        "--sites",
        "1",
        "--channels",
        "1",
        "--empty",
    )
    wells = {NAME.match(p.name)["well"] for p in image_files(out)}
    assert wells == {f"A{c:02d}" for c in range(1, 13)} | {"B01"}
    rows = {(r.get(BTS + "Row"), r.get(BTS + "Column")) for r in mlf_records(out)}
    assert ("2", "1") in rows


def test_stage_positions_recover_the_site_grid(default_plate: Path) -> None:
    assert site_grid(4) == (2, 2) and site_grid(6) == (2, 3) and site_grid(9) == (3, 3)
    rows, cols = site_grid(6)
    step = 128 * 0.325
    by_well: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for record in mlf_records(default_plate):
        well = NAME.match(record.text)["well"]
        site = int(record.get(BTS + "FieldIndex")) - 1
        by_well[well][site] = (float(record.get(BTS + "X")), float(record.get(BTS + "Y")))
    assert set(by_well) == {"A01", "A02"}
    for positions in by_well.values():
        xs = sorted({x for x, _ in positions.values()})
        ys = sorted({y for _, y in positions.values()}, reverse=True)  # stage y points up
        assert len(xs) == cols and len(ys) == rows
        assert np.allclose(np.diff(xs), step) and np.allclose(np.diff(ys), -step)
        for site, (x, y) in positions.items():
            assert (ys.index(y), xs.index(x)) == divmod(site, cols)


# --- determinism -----------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    args = ("--size", "48x64", "--sites", "2", "--channels", "3", "--tpoints", "2")
    first = all_bytes(simulate(tmp_path / "a", *args, "--seed", "3"))
    second = all_bytes(simulate(tmp_path / "b", *args, "--seed", "3"))
    other = all_bytes(simulate(tmp_path / "c", *args, "--seed", "4"))
    assert first == second
    assert set(first) == set(other)
    differing = {name for name in first if first[name] != other[name]}
    assert any(name.endswith("C01.tif") for name in differing)
    assert "ground_truth/cells.csv" in differing


# --- pixels ----------------------------------------------------------------


def test_images_are_uint16_of_requested_size_in_realistic_range(small_plate: Path) -> None:
    for path in image_files(small_plate)[:12]:
        image = tifffile.imread(path)
        assert image.dtype == np.uint16
        assert image.shape == (64, 96)
        assert 60 <= np.median(image) <= 400  # mostly background
        assert image.max() < 20000
    nuclei = tifffile.imread(small_plate / "Sim_A01_T0001F001L01A01Z01C01.tif")
    assert nuclei.max() > 1000


def test_vignetting_darkens_corners_of_the_background(default_plate: Path) -> None:
    truth = default_plate / "ground_truth"
    for channel in (1, 2):
        total = np.zeros((128, 128))
        count = np.zeros((128, 128))
        for path in default_plate.glob(f"*C{channel:02d}.tif"):
            match = NAME.match(path.name)
            site = int(match["f"]) - 1
            labels = tifffile.imread(truth / f"cells_{match['well']}_s{site}_t0.tif")
            background = labels == 0
            total += np.where(background, tifffile.imread(path), 0)
            count += background
        mean = total / np.maximum(count, 1)
        corners = [
            (slice(None, 24), slice(None, 24)),
            (slice(None, 24), slice(-24, None)),
            (slice(-24, None), slice(None, 24)),
            (slice(-24, None), slice(-24, None)),
        ]
        corner_mean = np.mean([mean[c][count[c] > 0].mean() for c in corners])
        middle = (slice(48, 80), slice(48, 80))
        centre = mean[middle][count[middle] > 0].mean()
        assert corner_mean < 0.85 * centre, (channel, corner_mean, centre)


def test_ground_truth_centres_lie_on_bright_labelled_nuclei(small_plate: Path) -> None:
    rows = read_cells_csv(small_plate)
    assert rows and list(rows[0]) == ["well", "site", "tpoint", "cell_label", "y", "x"]
    by_site: dict[tuple[str, int, int], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_site[row["well"], int(row["site"]), int(row["tpoint"])].append(row)
    assert len(by_site) == 3 * 3 * 2
    truth = small_plate / "ground_truth"
    for (well, site, tpoint), site_rows in by_site.items():
        nuclei = tifffile.imread(truth / f"nuclei_{well}_s{site}_t{tpoint}.tif")
        cells = tifffile.imread(truth / f"cells_{well}_s{site}_t{tpoint}.tif")
        # z-plane 1 of 2 is only slightly out of focus
        image = tifffile.imread(
            small_plate / f"Sim_{well}_T{tpoint + 1:04d}F{site + 1:03d}L01A01Z01C01.tif"
        )
        labels = {int(r["cell_label"]) for r in site_rows}
        assert len(labels) == len(site_rows)
        assert set(np.unique(nuclei)) - {0} == labels
        assert set(np.unique(cells)) - {0} == labels
        assert np.array_equal(cells[nuclei > 0], nuclei[nuclei > 0])
        background = np.median(image[cells == 0])
        for row in site_rows:
            y, x = round(float(row["y"])), round(float(row["x"]))
            assert nuclei[y, x] == int(row["cell_label"])
            assert image[y, x] > 2 * background


def test_cells_touch_in_clusters(default_plate: Path) -> None:
    touching = 0
    for path in (default_plate / "ground_truth").glob("cells_*.tif"):
        labels = tifffile.imread(path).astype(np.int64)
        right = (labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
        down = (labels[1:, :] != labels[:-1, :]) & (labels[1:, :] > 0) & (labels[:-1, :] > 0)
        touching += int(right.sum() + down.sum())
    assert touching > 0


def test_time_points_keep_cell_labels(small_plate: Path) -> None:
    rows = read_cells_csv(small_plate)
    labels: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r in rows:
        labels[r["well"], r["site"], r["tpoint"]].add(r["cell_label"])
    for well in ("A01", "A02", "A03"):
        for site in "012":
            assert labels[well, site, "0"] and labels[well, site, "0"] == labels[well, site, "1"]


def test_simulation_json_and_sites_csv(small_plate: Path) -> None:
    params = json.loads((small_plate / "ground_truth" / "simulation.json").read_text())
    assert params["spec"]["seed"] == 7
    assert params["spec"]["channels"] == 3
    assert params["n_images"] == 108
    with open(small_plate / "ground_truth" / "sites.csv", newline="") as fh:
        sites = list(csv.DictReader(fh))
    assert len(sites) == 9


# --- options and errors ----------------------------------------------------


def test_empty_writes_zero_byte_files_and_full_metadata(tmp_path: Path) -> None:
    out = simulate(
        tmp_path / "out", "--empty", "--wells", "4", "--channels", "4", "--size", "2160x2560"
    )
    files = image_files(out)
    assert len(files) == 4 * 4 * 4
    assert all(p.stat().st_size == 0 for p in files)
    assert len(mlf_records(out)) == len(files)
    root = ET.parse(out / "MeasurementDetail.mrf").getroot()
    assert len(root.findall("bts:MeasurementChannel", NS)) == 4
    assert not (out / "ground_truth" / "cells.csv").exists()
    assert (out / "ground_truth" / "simulation.json").exists()


def test_too_many_wells_exit_2_without_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run(str(out), "--wells", "400", "--plate-format", "384")
    assert code == 2
    assert output.startswith("tm_simulate: error: ") and output.count("\n") == 1, output
    assert "384" in output
    assert not out.exists()
    code, _ = run(str(out), "--wells", "97", "--plate-format", "96")
    assert code == 2


def test_non_empty_outdir_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, output = run(str(out), "--size", "32x32", "--sites", "1")
    assert code == 2
    assert output.startswith("tm_simulate: error: ") and output.count("\n") == 1, output
    assert "not empty" in output
    assert not (out / "MeasurementData.mlf").exists()
    code, output = run(str(out), "--size", "32x32", "--sites", "1", "--force", "-q")
    assert code == 0, output
    assert (out / "MeasurementData.mlf").exists() and (out / "keep.txt").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("--size", "abc"),
        ("--size", "0x10"),
        ("--wells", "0"),
        ("--microscope", "nikon"),
        ("--plate-format", "1536"),
        ("--prefix", "my_plate"),
        ("--seed", "-1"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, output = run(str(tmp_path / "out"), *args)
    assert code == 2, output
    assert output.startswith("tm_simulate: error: ") and output.count("\n") == 1, output
    assert not (tmp_path / "out").exists()


def test_help_explains_layout() -> None:
    result = CliRunner().invoke(main, ["plate", "--help"])
    assert result.exit_code == 0
    for text in ("MeasurementData.mlf", "ground_truth", "cells.csv", "--empty", "EXAMPLES"):
        assert text in result.output


# --- building blocks -------------------------------------------------------


def test_nuclei_never_overlap_and_stay_inside() -> None:
    shape = (200, 300)
    rng = np.random.default_rng(1)
    cells = cellsim.place_cells(rng, shape)
    for _ in range(3):
        cells = cellsim.move_cells(rng, cells, shape)
        centres, major = cells.centres, cells.nucleus_axes[:, 0]
        assert (centres >= 0).all() and (centres <= np.array(shape) - 1).all()
        dist = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
        limit = major[:, None] + major[None, :] + 1.0
        np.fill_diagonal(dist, np.inf)
        assert (dist >= limit - 1e-9).all()


def test_expose_adds_signal_dependent_noise_without_saturating() -> None:
    shape = (64, 64)
    signal = np.zeros(shape, np.float32)
    signal[:, 32:] = 60000.0  # would saturate without clipping
    flat = np.ones(shape, np.float32)
    noise = cellsim.NoiseBank(64 * 64, 0).window(np.random.default_rng(0))
    image = cellsim.expose(signal, flat, noise, background=200.0)
    assert image.dtype == np.uint16
    dim, bright = image[:, :32].astype(float), image[:, 32:].astype(float)
    assert abs(dim.mean() - 200) < 5 and 8 < dim.std() < 25  # sqrt(200 + 25) ~ 15
    assert bright.std() > 5 * dim.std()  # shot noise grows with the signal
    assert image.max() <= 65535


def test_vignetting_field_is_darkest_in_the_corners() -> None:
    field = cellsim.vignetting_field((100, 120), strength=0.4)
    assert field.dtype == np.float32 and field.max() <= 1.0
    assert field[0, 0] < field[50, 60] and abs(field[0, 0] - 0.6) < 0.05


# --- multiplexing cycles (--cycles, --max-shift) ----------------------------


def read_shifts_csv(outdir: Path) -> list[dict[str, str]]:
    with open(outdir / "ground_truth" / "shifts.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cycles_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 cycles x 2 wells x 3 sites x 3 channels, 64x80 px, shifts up to 12 px."""
    out = tmp_path_factory.mktemp("cycles") / "out"
    return simulate(
        out, "--cycles", "3", "--max-shift", "12", "--wells", "2", "--sites", "3",
        "--channels", "3", "--size", "64x80", "--seed", "5",
    )  # fmt: skip


def test_cycles_write_one_plate_directory_per_cycle(cycles_plate: Path) -> None:
    assert sorted(p.name for p in cycles_plate.iterdir()) == [
        "cycle_1", "cycle_2", "cycle_3", "ground_truth",
    ]  # fmt: skip
    for k in (1, 2, 3):
        cycle = cycles_plate / f"cycle_{k}"
        assert len(image_files(cycle)) == 2 * 3 * 3
        assert sorted(r.text for r in mlf_records(cycle)) == [p.name for p in image_files(cycle)]
        assert (cycle / "MeasurementDetail.mrf").is_file()
        for name in ("cells.csv", "sites.csv", "simulation.json"):
            assert (cycle / "ground_truth" / name).is_file()
    params = json.loads((cycles_plate / "ground_truth" / "simulation.json").read_text())
    assert params["cycles"] == 3 and params["max_shift_px"] == 12
    assert params["cycle_directories"] == ["cycle_1", "cycle_2", "cycle_3"]


def test_shifts_csv_lists_every_site_of_every_cycle(cycles_plate: Path) -> None:
    rows = read_shifts_csv(cycles_plate)
    assert list(rows[0]) == ["cycle", "well", "site_y", "site_x", "y", "x"]
    assert len(rows) == 3 * 2 * 3
    with open(cycles_plate / "cycle_1" / "ground_truth" / "sites.csv", newline="") as fh:
        grid = {(r["well"], r["grid_row"], r["grid_column"]) for r in csv.DictReader(fh)}
    for cycle in "012":
        assert {(r["well"], r["site_y"], r["site_x"]) for r in rows if r["cycle"] == cycle} == grid
    assert all((r["y"], r["x"]) == ("0", "0") for r in rows if r["cycle"] == "0")
    later = [(int(r["y"]), int(r["x"])) for r in rows if r["cycle"] != "0"]
    assert all(-12 <= v <= 12 for shift in later for v in shift)
    assert len(set(later)) > 6  # random per site and cycle
    assert any(y < 0 for y, _ in later) and any(x > 0 for _, x in later)


def test_cycle_content_is_displaced_by_the_recorded_shift(cycles_plate: Path) -> None:
    """cycle_k[r + y, c + x] == cycle_1[r, c] for the labels; images agree up to noise."""
    sites = {}
    with open(cycles_plate / "cycle_1" / "ground_truth" / "sites.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            sites[r["well"], int(r["grid_row"]), int(r["grid_column"])] = int(r["site"])
    height, width = 64, 80
    for row in read_shifts_csv(cycles_plate):
        k, y, x = int(row["cycle"]), int(row["y"]), int(row["x"])
        well = row["well"]
        site = sites[well, int(row["site_y"]), int(row["site_x"])]
        ref_dir, dir_k = cycles_plate / "cycle_1", cycles_plate / f"cycle_{k + 1}"
        rows_ref = slice(max(0, -y), min(height, height - y))
        cols_ref = slice(max(0, -x), min(width, width - x))
        rows_k = slice(rows_ref.start + y, rows_ref.stop + y)
        cols_k = slice(cols_ref.start + x, cols_ref.stop + x)
        for kind in ("nuclei", "cells"):
            ref = tifffile.imread(ref_dir / "ground_truth" / f"{kind}_{well}_s{site}_t0.tif")
            moved = tifffile.imread(dir_k / "ground_truth" / f"{kind}_{well}_s{site}_t0.tif")
            np.testing.assert_array_equal(moved[rows_k, cols_k], ref[rows_ref, cols_ref])
        name = f"Sim_{well}_T0001F{site + 1:03d}L01A01Z01C01.tif"
        a = tifffile.imread(ref_dir / name)[rows_ref, cols_ref].astype(float)
        b = tifffile.imread(dir_k / name)[rows_k, cols_k].astype(float)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
        # cells keep their labels: cells.csv centres move by the shift
        cells_ref = {
            r["cell_label"]: (float(r["y"]), float(r["x"]))
            for r in read_cells_csv(ref_dir) if r["well"] == well and r["site"] == str(site)
        }  # fmt: skip
        for r in read_cells_csv(dir_k):
            if r["well"] == well and r["site"] == str(site) and r["cell_label"] in cells_ref:
                y0, x0 = cells_ref[r["cell_label"]]
                assert abs(float(r["y"]) - (y0 + y)) < 0.011
                assert abs(float(r["x"]) - (x0 + x)) < 0.011


def test_cycles_share_reference_stains_but_not_spot_stains(cycles_plate: Path) -> None:
    rows = {
        (r["cycle"], r["well"], r["site_y"], r["site_x"]): r for r in read_shifts_csv(cycles_plate)
    }
    # a site whose shift in cycle 2 is zero would make the comparison below trivial
    row = rows["1", "A01", "0", "0"]
    y, x = int(row["y"]), int(row["x"])
    h, w = 64 - abs(y), 80 - abs(x)
    r0, c0 = max(0, -y), max(0, -x)

    def overlap(cycle: int, channel: int) -> np.ndarray:
        image = tifffile.imread(
            cycles_plate / f"cycle_{cycle}" / f"Sim_A01_T0001F001L01A01Z01C{channel:02d}.tif"
        ).astype(float)
        dy, dx = (y, x) if cycle == 2 else (0, 0)
        return image[r0 + dy : r0 + dy + h, c0 + dx : c0 + dx + w].ravel()

    assert np.corrcoef(overlap(1, 1), overlap(2, 1))[0, 1] > 0.9
    assert np.corrcoef(overlap(1, 2), overlap(2, 2))[0, 1] > 0.8
    assert np.corrcoef(overlap(1, 3), overlap(2, 3))[0, 1] < 0.8


def test_cycles_are_deterministic(tmp_path: Path) -> None:
    args = ("--cycles", "2", "--size", "48x64", "--sites", "2", "--channels", "3")
    first = all_bytes(simulate(tmp_path / "a", *args, "--seed", "3"))
    assert first == all_bytes(simulate(tmp_path / "b", *args, "--seed", "3"))
    assert "ground_truth/shifts.csv" in first
    other = read_shifts_csv(simulate(tmp_path / "c", *args, "--seed", "4"))
    assert other != read_shifts_csv(tmp_path / "a")


def test_one_cycle_is_the_plain_plate(tmp_path: Path) -> None:
    args = ("--size", "48x64", "--sites", "2", "--channels", "2")
    plain = all_bytes(simulate(tmp_path / "a", *args))
    assert all_bytes(simulate(tmp_path / "b", *args, "--cycles", "1")) == plain
    assert not any(name.startswith("cycle_") for name in plain)


@pytest.mark.parametrize(
    ("microscope", "extra"),
    [("visiview", ("--zplanes", "2")), ("metamorph", ()), ("tiff", ("--zplanes", "2"))],
)
def test_cycles_in_other_vendor_layouts(tmp_path: Path, microscope: str, extra: tuple) -> None:
    out = simulate(
        tmp_path / "out", "--microscope", microscope, "--cycles", "2", "--size", "48x64",
        "--sites", "2", "--channels", "2", "--wells", "1", *extra,
    )  # fmt: skip
    one, two = out / "cycle_1", out / "cycle_2"
    names = sorted(p.name for p in one.iterdir() if p.is_file())
    assert names and names == sorted(p.name for p in two.iterdir() if p.is_file())
    assert len(read_shifts_csv(out)) == 2 * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-shift", "5"), "--max-shift needs --cycles"),
        (("--cycles", "2", "--tpoints", "2"), "--tpoints"),
        (("--cycles", "2", "--size", "64x64", "--max-shift", "17"), "max-shift must be within"),
        (("--cycles", "0"), "--cycles"),
    ],
)
def test_bad_cycle_options_exit_2_with_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, output = run(str(tmp_path / "out"), *args)
    assert code == 2, output
    assert output.startswith("tm_simulate: error: ") and output.count("\n") == 1, output
    assert message in output
    assert not (tmp_path / "out").exists()


def test_help_explains_cycles() -> None:
    result = CliRunner().invoke(main, ["plate", "--help"])
    for text in ("--cycles", "--max-shift", "shifts.csv", "cycle_1"):
        assert text in result.output
