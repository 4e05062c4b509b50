"""The measurement modules of jtmodules on a simulated site, against independent computations."""

from __future__ import annotations

import json

import mahotas as mh
import numpy as np
import pandas as pd
import pytest
from helpers import simulated_site
from scipy import ndimage
from skimage.measure import perimeter, regionprops_table

from jtmodules import (
    measure_intensity,
    measure_morphology,
    measure_neighbours,
    measure_point_pattern,
    measure_texture,
    measure_volume_image,
)


@pytest.fixture(scope="module")
def site():
    return simulated_site(shape=(256, 256))


def labels_of(image):
    present = np.unique(image)
    return present[present > 0]


def squares(shape, *boxes):
    """Label image with label i + 1 on the box (r0, r1, c0, c1) number i."""
    image = np.zeros(shape, np.int32)
    for i, (r0, r1, c0, c1) in enumerate(boxes, start=1):
        image[r0:r1, c0:c1] = i
    return image


# ------------------------------------------------------------------ assignment


def test_measurements_are_indexed_by_the_assign_labels(site):
    nuclei, dapi = site["nuclei"], site["dapi"]
    result = measure_intensity.main(nuclei, nuclei, dapi).measurements
    assert isinstance(result, pd.DataFrame)
    assert result.index.name == "label"
    assert list(result.index) == list(labels_of(nuclei))
    assert list(result.columns) == [f"Intensity_{f}" for f in ("max", "mean", "min", "sum", "std")]
    assert all(dtype == np.float64 for dtype in result.dtypes)
    # labels need not be consecutive; every assign label gets a row
    cells = np.where(site["cells"] > 0, site["cells"] * 3 + 100, 0).astype(np.int32)
    result = measure_intensity.main(nuclei, cells, dapi).measurements
    assert list(result.index) == list(labels_of(cells))
    label = 3
    assert result.loc[label * 3 + 100, "Intensity_mean"] == pytest.approx(
        dapi[nuclei == label].mean()
    )


def test_each_assign_object_takes_the_value_of_the_extract_object_inside(site):
    nuclei, cells, dapi = site["nuclei"].copy(), site["cells"], site["dapi"]
    nuclei[nuclei == 5] = 0  # cell 5 loses its nucleus
    result = measure_intensity.main(nuclei, cells, dapi).measurements
    assert list(result.index) == list(labels_of(cells))
    for cell in labels_of(cells):
        inside = np.bincount(nuclei[cells == cell])
        inside[0] = 0
        if inside.any():
            nucleus = inside.argmax()
            assert result.loc[cell, "Intensity_mean"] == pytest.approx(
                dapi[nuclei == nucleus].mean()
            )
    assert result.loc[5].isna().all()
    assert result.drop(index=5).notna().all().all()


def test_aggregate_counts_and_summarises_the_extract_objects(site):
    nuclei, cells, dapi = site["nuclei"].copy(), site["cells"], site["dapi"]
    nuclei[nuclei == 5] = 0
    plain = measure_intensity.main(nuclei, cells, dapi).measurements
    result = measure_intensity.main(nuclei, cells, dapi, aggregate=True).measurements
    assert list(result.index) == list(labels_of(cells))
    has_nucleus = [c for c in labels_of(cells) if (nuclei[cells == c] > 0).any()]
    assert (result.loc[has_nucleus, "Count"] == 1).all()
    assert result.loc[5, "Count"] == 0
    assert np.isnan(result.loc[5, "Mean_Intensity_mean"])
    assert np.isnan(result.loc[5, "Sum_Intensity_sum"])
    np.testing.assert_allclose(
        result.loc[has_nucleus, "Mean_Intensity_mean"], plain.loc[has_nucleus, "Intensity_mean"]
    )
    np.testing.assert_allclose(result.loc[has_nucleus, "Std_Intensity_mean"], 0, atol=1e-9)
    expected = {f"{s}_Intensity_{f}" for s in ("Mean", "Std", "Sum") for f in ("mean", "sum")}
    assert expected | {"Count"} <= set(result.columns)


def test_several_extract_objects_need_aggregate(site):
    nuclei, dapi = site["nuclei"], site["dapi"]
    whole = np.ones_like(nuclei)
    with pytest.raises(ValueError, match="aggregate"):
        measure_intensity.main(nuclei, whole, dapi)
    result = measure_intensity.main(nuclei, whole, dapi, aggregate=True).measurements
    assert list(result.index) == [1]
    assert result.loc[1, "Count"] == len(labels_of(nuclei))
    assert result.loc[1, "Sum_Intensity_sum"] == pytest.approx(dapi[nuclei > 0].sum(dtype=float))
    means = [dapi[nuclei == n].mean() for n in labels_of(nuclei)]
    assert result.loc[1, "Mean_Intensity_mean"] == pytest.approx(np.mean(means))
    assert result.loc[1, "Std_Intensity_mean"] == pytest.approx(np.std(means))


def test_extract_objects_belong_where_most_of_their_pixels_lie():
    image = np.full((20, 40), 100, np.uint16)
    assign = squares((20, 40), (0, 20, 0, 20), (0, 20, 20, 40))
    extract = np.zeros((20, 40), np.int32)
    extract[5:9, 14:22] = 1  # 24 of its 32 pixels in assign object 1
    extract[12:16, 18:30] = 2  # 40 of its 48 pixels in assign object 2
    extract[0:2, 0:40] = 3  # half in each: belongs to neither
    result = measure_morphology.main(extract, assign).measurements
    assert list(result["Morphology_Area"]) == [32, 48]
    crowded = np.zeros((20, 40), np.int32)
    crowded[0:4, 17:21] = 1  # 3 of 4 columns in assign object 1
    crowded[10:14, 22:24] = 2  # in assign object 2
    crowded[10:14, 14:20] = 3  # in assign object 1, with extract object 1
    with pytest.raises(ValueError, match="aggregate"):
        measure_intensity.main(crowded, assign, image)
    result = measure_intensity.main(crowded, assign, image, aggregate=True).measurements
    assert list(result["Count"]) == [2, 1]


# ------------------------------------------------------------------- intensity


def test_intensity_features_equal_numpy(site):
    nuclei, cells, stain = site["nuclei"], site["cells"], site["stain"]
    result = measure_intensity.main(cells, cells, stain).measurements
    for label in (1, 3, 17, labels_of(cells)[-1]):
        pixels = stain[cells == label].astype(np.float64)
        row = result.loc[label]
        assert row["Intensity_mean"] == pytest.approx(pixels.mean())
        assert row["Intensity_sum"] == pytest.approx(pixels.sum())
        assert row["Intensity_min"] == pixels.min()
        assert row["Intensity_max"] == pixels.max()
        assert row["Intensity_std"] == pytest.approx(pixels.std())
    # nuclei are brighter in the nuclear stain than the cytoplasm around them
    dapi = site["dapi"]
    inner = measure_intensity.main(nuclei, nuclei, dapi).measurements["Intensity_mean"]
    whole = measure_intensity.main(cells, cells, dapi).measurements["Intensity_mean"]
    assert (inner > whole).mean() > 0.9


# ------------------------------------------------------------------ morphology


def test_morphology_features_equal_independent_computations(site):
    cells = site["cells"]
    result = measure_morphology.main(cells, cells).measurements
    assert len(result.columns) == 15
    reference = pd.DataFrame(
        regionprops_table(
            cells,
            properties=(
                "label",
                "area",
                "perimeter",
                "eccentricity",
                "extent",
                "solidity",
                "major_axis_length",
                "minor_axis_length",
                "centroid",
            ),
        )
    ).set_index("label")
    for ours, theirs in (
        ("Area", "area"),
        ("Perimeter", "perimeter"),
        ("Eccentricity", "eccentricity"),
        ("Extent", "extent"),
        ("Major_Axis_Length", "major_axis_length"),
        ("Minor_Axis_Length", "minor_axis_length"),
        ("Local_Centroid_y", "centroid-0"),
        ("Local_Centroid_x", "centroid-1"),
    ):
        np.testing.assert_allclose(result[f"Morphology_{ours}"], reference[theirs], rtol=1e-9)
    convexity = result["Morphology_Convexity"]
    assert ((convexity > 0.5) & (convexity <= 1)).all()
    np.testing.assert_allclose(convexity, reference["solidity"], atol=0.03)
    area = reference["area"]
    np.testing.assert_allclose(result["Morphology_Equivalent_Diameter"], np.sqrt(4 * area / np.pi))
    np.testing.assert_allclose(
        result["Morphology_Circularity"], 4 * np.pi * area / reference["perimeter"] ** 2
    )
    for label in (2, 11, 30):
        mask = np.pad(cells == label, 1)
        distance = ndimage.distance_transform_edt(mask)
        row = result.loc[label]
        assert row["Morphology_Area"] == (cells == label).sum()
        assert row["Morphology_Maximum_Radius"] == pytest.approx(distance.max(), abs=1e-4)
        assert row["Morphology_Mean_Radius"] == pytest.approx(distance[mask].mean(), abs=1e-4)
        assert row["Morphology_Roundness"] == pytest.approx(mh.features.roundness(mask))
        assert row["Morphology_Perimeter"] == pytest.approx(perimeter(mask, 4))


def test_zernike_moments_are_rotation_invariant(site):
    nuclei = site["nuclei"]
    result = measure_morphology.main(nuclei, nuclei, measure_zernike=True).measurements
    zernike = [c for c in result.columns if c.startswith("Morphology_Zernike-")]
    assert len(zernike) == 49 and zernike[0] == "Morphology_Zernike-0-0"
    assert zernike[-1] == "Morphology_Zernike-12-12"
    assert result[zernike].notna().all().all()
    turned = np.ascontiguousarray(np.rot90(nuclei))
    rotated = measure_morphology.main(turned, turned, measure_zernike=True).measurements
    np.testing.assert_allclose(rotated[zernike], result[zernike], atol=1e-8)
    np.testing.assert_allclose(rotated["Morphology_Area"], result["Morphology_Area"])


def test_morphology_of_a_disc_and_a_bar():
    rows, columns = np.mgrid[0:80, 0:120]
    image = np.zeros((80, 120), np.int32)
    image[(rows - 40) ** 2 + (columns - 40) ** 2 <= 20**2] = 1
    image[35:45, 70:115] = 2
    result = measure_morphology.main(image, image).measurements
    disc, bar = result.loc[1], result.loc[2]
    assert disc["Morphology_Eccentricity"] < 0.05 < 0.9 < bar["Morphology_Eccentricity"]
    assert disc["Morphology_Circularity"] > 0.9 > 0.6 > bar["Morphology_Circularity"]
    assert disc["Morphology_Maximum_Radius"] == pytest.approx(np.sqrt(401))  # (20, 1) is outside
    assert bar["Morphology_Maximum_Radius"] == pytest.approx(5)
    assert bar["Morphology_Convexity"] == 1 and bar["Morphology_Extent"] == 1
    assert bar["Morphology_Elongation"] > 0.7 > 0.05 > disc["Morphology_Elongation"]
    assert (disc["Morphology_Local_Centroid_x"], disc["Morphology_Local_Centroid_y"]) == (40, 40)


# --------------------------------------------------------------------- texture


def _gabor_directly(labels, image, label, wavelength):
    rows, columns = np.nonzero(labels == label)
    values = image[rows, columns].astype(float)
    dy, dx = rows - rows.mean(), columns - columns.mean()
    sigma = np.sqrt(rows.size / np.pi) / 3
    envelope = np.exp(-(dy**2 + dx**2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    scores = []
    for theta in np.arange(4) * np.pi / 4:
        wave = np.exp(2j * np.pi / wavelength * (dy * np.cos(theta) + dx * np.sin(theta)))
        scores.append(abs(np.sum((values - values.mean()) * envelope * wave)))
    return max(scores)


def test_texture_gabor_and_hu_equal_direct_computations(site):
    cells, stain = site["cells"], site["stain"]
    result = measure_texture.main(cells, cells, stain).measurements
    gabor = [f"Texture_Gabor-frequency-{f}" for f in (1, 5, 10)]
    hu = [f"Texture_Hu-{k}" for k in range(7)]
    assert list(result.columns) == gabor + hu
    for label in (1, 9, 25):
        for f in (1, 5, 10):
            expected = _gabor_directly(cells, stain, label, f)
            assert result.loc[label, f"Texture_Gabor-frequency-{f}"] == pytest.approx(expected)
    reference = pd.DataFrame(
        regionprops_table(cells, stain, properties=("label", "moments_weighted_hu"))
    ).set_index("label")
    np.testing.assert_allclose(result[hu], reference, rtol=1e-6, atol=1e-30)


def test_gabor_responds_to_stripes_of_its_wavelength():
    rng = np.random.default_rng(1)
    labels = squares((60, 120), (10, 50, 10, 50), (10, 50, 70, 110))
    image = rng.normal(1000, 5, labels.shape)
    rows = np.arange(60)[:, None]
    image[:, :60] += 300 * np.cos(2 * np.pi * rows / 5)  # stripes of period 5 on object 1
    result = measure_texture.main(labels, labels, image.astype(np.uint16), frequencies=[5, 10])
    stripes, flat = result.measurements.loc[1], result.measurements.loc[2]
    assert stripes["Texture_Gabor-frequency-5"] > 20 * flat["Texture_Gabor-frequency-5"]
    assert stripes["Texture_Gabor-frequency-5"] > 5 * stripes["Texture_Gabor-frequency-10"]


def test_optional_texture_features(site):
    nuclei, dapi = site["nuclei"], site["dapi"]
    result = measure_texture.main(
        nuclei,
        nuclei,
        dapi,
        measure_TAS=True,
        measure_LBP=True,
        radii=[1, 3],
        measure_haralick=True,
        scales=[1, 2],
    ).measurements
    columns = list(result.columns)
    tas = [c for c in columns if c.startswith("Texture_TAS-")]
    assert len(tas) == 54 and tas[0] == "Texture_TAS-center-0" and tas[-1] == "Texture_TAS-n-mu-8"
    for start in range(0, 54, 9):
        sums = result[tas[start : start + 9]].sum(axis=1)
        assert np.all(np.isclose(sums, 1) | np.isclose(sums, 0))
    for radius in (1, 3):
        lbp = [f"Texture_LBP-radius-{radius}-{i}" for i in range(36)]
        np.testing.assert_allclose(result[lbp].sum(axis=1), 1)
    haralick = [c for c in columns if c.startswith("Texture_Haralick-")]
    assert len(haralick) == 26
    second_moment = result["Texture_Haralick-angular-second-moment-1"]
    assert ((second_moment > 0) & (second_moment <= 1)).all()
    assert result["Texture_Haralick-entropy-2"].notna().all()
    assert {"Texture_Gabor-frequency-5", "Texture_Hu-0"} <= set(columns)
    # the object's pixels on its bounding box (background 0), straight into mahotas
    label = 7
    ys, xs = np.nonzero(nuclei == label)
    box = np.s_[ys.min() - 1 : ys.max() + 2, xs.min() - 1 : xs.max() + 2]
    mask = nuclei[box] == label
    lbp = mh.features.lbp(np.where(mask, dapi[box] + 1.0, 0), 3, 8, ignore_zeros=True)
    lbp = np.pad(lbp, (0, 36 - lbp.size)) / mask.sum()
    ours = result.loc[label, [f"Texture_LBP-radius-3-{i}" for i in range(36)]]
    np.testing.assert_allclose(ours, lbp)
    top = np.percentile(dapi, 99.999)
    scaled = np.where(mask, 1 + np.floor(254 * np.minimum(dapi[box], top) / top), 0)
    haralick = mh.features.haralick(
        scaled.astype(np.uint8), ignore_zeros=True, return_mean=True, distance=2
    )
    ours = result.loc[label, [c for c in columns if c.endswith("-2") and "Haralick" in c]]
    np.testing.assert_allclose(ours, haralick)
    tas = mh.features.pftas(np.where(mask, dapi[box], 0).astype(np.uint16), T=mh.otsu(dapi))
    np.testing.assert_allclose(result.loc[label, [c for c in columns if "TAS" in c]], tas)


def test_texture_rejects_bad_options(site):
    nuclei, dapi = site["nuclei"], site["dapi"]
    with pytest.raises(ValueError, match="frequencies"):
        measure_texture.main(nuclei, nuclei, dapi, frequencies=[0, 5])
    with pytest.raises(ValueError, match="frequencies"):
        measure_texture.main(nuclei, nuclei, dapi, frequencies="5")
    with pytest.raises(ValueError, match="scales"):
        measure_texture.main(nuclei, nuclei, dapi, measure_haralick=True, scales=[1.5])
    with pytest.raises(ValueError, match="measure_TAS"):
        measure_texture.main(nuclei, nuclei, dapi, measure_TAS="yes")


# --------------------------------------------------------------- point pattern


def test_point_pattern_distances():
    ref = squares((60, 60), (10, 51, 10, 51))
    points = np.zeros((60, 60), np.int32)
    points[30, 30] = 1  # the centre: 21 px from outside the square
    points[30, 40] = 2
    points[20, 30] = 3
    points[55, 55] = 4  # outside the reference object
    result = measure_point_pattern.main(points, ref, points).measurements
    assert list(result.index) == [1, 2, 3, 4]
    name = "PointPattern_{}".format
    assert result.loc[1, name("absolute-distance-to-border")] == pytest.approx(21)
    assert result.loc[1, name("relative-distance-to-border")] == pytest.approx(1)
    assert result.loc[2, name("absolute-distance-to-border")] == pytest.approx(11)
    assert result.loc[2, name("absolute-distance-to-nearest-neighbor")] == pytest.approx(10)
    between = np.hypot(10, 10)
    assert result.loc[2, name("mean-absolute-distance-to-neighbors")] == pytest.approx(
        (10 + between) / 2
    )
    assert result.loc[2, name("std-absolute-distance-to-neighbors")] == pytest.approx(
        (between - 10) / 2
    )
    diameter = np.sqrt(4 * 41 * 41 / np.pi)
    assert result.loc[3, name("relative-distance-to-nearest-neighbor")] == pytest.approx(
        10 / diameter
    )
    assert result.loc[4].isna().all()
    summary = measure_point_pattern.main(points, ref, ref, aggregate=True).measurements
    assert summary.loc[1, "Count"] == 3
    assert summary.loc[1, f"Mean_{name('absolute-distance-to-border')}"] == pytest.approx(43 / 3)


def test_point_pattern_of_nuclei_in_cells(site):
    nuclei, cells = site["nuclei"], site["cells"]
    result = measure_point_pattern.main(nuclei, cells, cells).measurements
    assert list(result.index) == list(labels_of(cells))
    border = result["PointPattern_absolute-distance-to-border"]
    relative = result["PointPattern_relative-distance-to-border"]
    assert (border > 0).all() and ((relative > 0) & (relative <= 1)).all()
    # one nucleus per cell: no neighbours within a cell
    assert result["PointPattern_absolute-distance-to-nearest-neighbor"].isna().all()


# ------------------------------------------------------------------ neighbours


def _neighbours_directly(labels, near, touch):
    out = {}
    present = labels_of(labels)
    for label in present:
        mine = labels == label
        closest = ndimage.minimum(ndimage.distance_transform_edt(~mine), labels, present)
        count = sum(1 for o, d in zip(present, closest, strict=True) if o != label and d <= near)
        others = (labels != 0) & ~mine
        assert others.any()
        to_others = ndimage.distance_transform_edt(~others)
        outline = mine & ~ndimage.binary_erosion(mine, border_value=0)
        out[label] = (count, np.mean(to_others[outline] <= touch))
    return out


def test_neighbours_of_squares():
    labels = squares((40, 60), (5, 15, 5, 15), (5, 15, 15, 25), (5, 15, 28, 38), (25, 35, 45, 55))
    result = measure_neighbours.main(labels, labels).measurements
    assert list(result["Neighbours_Count"]) == [1, 1, 0, 0]
    # 10 pixels of the shared side and 2 + 2 outline pixels next to it, of 36
    assert result.loc[1, "Neighbours_Fraction_Touching"] == pytest.approx(14 / 36)
    assert result.loc[3, "Neighbours_Fraction_Touching"] == 0
    wide = measure_neighbours.main(labels, labels, neighbour_distance=4).measurements
    assert list(wide["Neighbours_Count"]) == [1, 2, 1, 0]


def test_neighbours_equal_direct_computation(site):
    cells = site["cells"]
    for near, touch in ((3, 3), (6, 1.5)):
        result = measure_neighbours.main(
            cells, cells, neighbour_distance=near, touching_distance=touch
        ).measurements
        expected = _neighbours_directly(cells, near, touch)
        np.testing.assert_allclose(result.to_numpy(), [expected[c] for c in result.index])
    assert result["Neighbours_Count"].max() >= 1


# ---------------------------------------------------------------- volume image


def test_volume_image_of_a_flat_and_a_sloped_object():
    labels = squares((30, 30), (5, 15, 5, 15), (18, 28, 3, 13))
    heights = np.zeros((30, 30), np.uint16)
    heights[5:15, 5:15] = 8
    heights[18:28, 3:13] = 2 * np.arange(3, 13)  # rises 2 planes per pixel along x
    result = measure_volume_image.main(labels, labels, heights, pixel_size=0.5, z_step=0.25)
    flat, sloped = result.measurements.loc[1], result.measurements.loc[2]
    name = "Morphology3D_{}".format
    assert flat[name("max_height")] == 2 and flat[name("mean_height")] == 2
    assert flat[name("volume_pL")] == pytest.approx(100 * 8 * 0.25 * 0.5**2 / 1000)
    assert flat[name("lower_surface_area")] == pytest.approx(100 * 0.25)
    assert flat[name("upper_surface_area")] == pytest.approx(81 * 0.25)  # 9 x 9 squares
    assert sloped[name("max_height")] == pytest.approx(24 * 0.25)
    slope = 2 * 0.25 / 0.5
    assert sloped[name("upper_surface_area")] == pytest.approx(81 * 0.25 * np.hypot(1, slope))
    assert sloped[name("total_surface_area")] == pytest.approx(
        sloped[name("lower_surface_area")] + sloped[name("upper_surface_area")]
    )


# --------------------------------------------------------------- figures, input


def _run(module, site, **options):
    nuclei, cells, dapi = site["nuclei"], site["cells"], site["dapi"]
    if module is measure_point_pattern:
        return module.main(nuclei, cells, cells, **options)
    if module in (measure_intensity, measure_texture, measure_volume_image):
        return module.main(nuclei, cells, dapi, **options)
    return module.main(nuclei, cells, **options)


MODULES = [
    measure_intensity,
    measure_morphology,
    measure_texture,
    measure_point_pattern,
    measure_neighbours,
    measure_volume_image,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.split(".")[-1])
def test_figure_only_when_plotting(module, site):
    plain = _run(module, site)
    assert plain.figure == ""
    plotted = _run(module, site, plot=True)
    figure = json.loads(plotted.figure)
    assert figure["data"] and len(figure["data"]) >= 2
    pd.testing.assert_frame_equal(plain.measurements, plotted.measurements)
    summary = _run(module, site, aggregate=True, plot=True)
    assert (summary.measurements["Count"] == 1).all()
    json.loads(summary.figure)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.split(".")[-1])
def test_bad_inputs_name_the_argument(module, site):
    with pytest.raises(ValueError, match="aggregate"):
        _run(module, site, aggregate="no")
    nuclei, cells, dapi = site["nuclei"], site["cells"], site["dapi"]
    floats = nuclei.astype(float)
    small = cells[:100, :100]
    if module is measure_point_pattern:
        calls = [
            ("extract_objects", lambda: module.main(floats, cells, cells)),
            ("ref_objects", lambda: module.main(nuclei, small, cells)),
            ("assign_objects", lambda: module.main(nuclei, cells, small)),
        ]
    elif module in (measure_intensity, measure_texture, measure_volume_image):
        calls = [
            ("extract_objects", lambda: module.main(floats, cells, dapi)),
            ("assign_objects", lambda: module.main(nuclei, small, dapi)),
            ("intensity_image", lambda: module.main(nuclei, cells, dapi.astype(np.float32))),
            ("intensity_image", lambda: module.main(nuclei, cells, dapi[:100, :100])),
        ]
    else:
        calls = [
            ("extract_objects", lambda: module.main(floats, cells)),
            ("extract_objects", lambda: module.main(nuclei[None], cells)),
            ("assign_objects", lambda: module.main(nuclei, -cells)),
        ]
    for name, call in calls:
        with pytest.raises(ValueError, match=name):
            call()


def test_bad_distances_and_sizes(site):
    cells, dapi = site["cells"], site["dapi"]
    with pytest.raises(ValueError, match="neighbour_distance"):
        measure_neighbours.main(cells, cells, neighbour_distance=-1)
    with pytest.raises(ValueError, match="touching_distance"):
        measure_neighbours.main(cells, cells, touching_distance="3")
    with pytest.raises(ValueError, match="pixel_size"):
        measure_volume_image.main(cells, cells, dapi, pixel_size=0)
    with pytest.raises(ValueError, match="z_step"):
        measure_volume_image.main(cells, cells, dapi, z_step=True)


def test_no_objects(site):
    empty = np.zeros((64, 64), np.int32)
    image = site["dapi"][:64, :64]
    cells = site["cells"][:64, :64]
    result = measure_intensity.main(empty, empty, image).measurements
    assert result.empty and result.index.name == "label"
    result = measure_texture.main(empty, cells, image).measurements
    assert list(result.index) == list(labels_of(cells)) and result.isna().all().all()
    result = measure_morphology.main(empty, cells, aggregate=True).measurements
    assert (result["Count"] == 0).all()


def test_large_labels_give_the_same_values(site):
    nuclei, cells, dapi = site["nuclei"], site["cells"], site["dapi"]
    big_nuclei = np.where(nuclei > 0, nuclei * 100_003, 0).astype(np.int32)  # above 2**22
    big_cells = np.where(cells > 0, cells * 100_003 + 7, 0).astype(np.int32)
    for module, args in (
        (measure_morphology, ()),
        (measure_texture, (dapi,)),
        (measure_neighbours, ()),
    ):
        small = module.main(nuclei, cells, *args, aggregate=True).measurements
        large = module.main(big_nuclei, big_cells, *args, aggregate=True).measurements
        assert list(large.index) == [c * 100_003 + 7 for c in small.index]
        np.testing.assert_allclose(large.to_numpy(), small.to_numpy(), rtol=1e-9)
