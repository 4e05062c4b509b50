"""Tests of the segmentation modules of jtmodules on simulated sites."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import simulated_site
from scipy import ndimage
from skimage.draw import disk, ellipse

from jtmodules import (
    detect_blobs,
    expand_or_shrink,
    fill,
    label,
    relabel,
    segment_secondary,
    separate_clumps,
    smooth,
    threshold_adaptive,
    threshold_manual,
    threshold_otsu,
)
from jtmodules import filter as filter_module
from jtmodules._shapes import object_features


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def noise(image: np.ndarray, where: np.ndarray) -> float:
    """Standard deviation of `image` about its local (11 x 11) mean at `where`."""
    image = image.astype(float)
    return float((image - ndimage.uniform_filter(image, 11))[where].std())


def mean_label_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU of each true object with the predicted object of the same label."""
    n = int(truth.max())
    inter = np.bincount(truth[(truth > 0) & (pred == truth)], minlength=n + 1)[1:]
    area_true = np.bincount(truth.ravel(), minlength=n + 1)[1:]
    area_pred = np.bincount(pred.ravel(), minlength=n + 1)[1 : n + 1]
    present = area_true > 0
    return float(np.mean(inter[present] / (area_true + area_pred - inter)[present]))


@pytest.fixture(scope="module")
def site():
    return simulated_site((256, 256), seed=0)


@pytest.fixture(scope="module")
def dapi(site):
    return smooth.main(site["dapi"], "gaussian", 5).smoothed_image


# ------------------------------------------------------------------ smooth


@pytest.mark.parametrize("filter_name", ["average", "gaussian", "median", "bilateral"])
def test_smooth_reduces_noise(site, filter_name):
    image = site["stain"]
    out = smooth.main(image, filter_name, 5).smoothed_image
    assert out.dtype == np.uint16 and out.shape == image.shape
    # background far from cells: noise on a smooth vignetting
    background = ndimage.binary_erosion(site["cells"] == 0, np.ones((3, 3)), iterations=6)
    assert noise(out, background) < 0.6 * noise(image, background)
    # the mean level is kept
    assert abs(out[background].mean() - image[background].mean()) < 2


def test_smooth_larger_filter_smooths_more(site):
    image = site["stain"]
    background = ndimage.binary_erosion(site["cells"] == 0, np.ones((3, 3)), iterations=6)
    stds = [
        noise(smooth.main(image, "average", size).smoothed_image, background) for size in (3, 7)
    ]
    assert stds[1] < stds[0]
    assert np.array_equal(smooth.main(image, "median", 1).smoothed_image, image)


def test_smooth_median_large_and_uint8():
    image = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    assert smooth.main(image, "median", 7).smoothed_image.dtype == np.uint8
    wide = image.astype(np.uint16) * 200
    out = smooth.main(wide, "median", 7).smoothed_image
    assert out.dtype == np.uint16
    assert np.array_equal(out, ndimage.median_filter(wide, size=7, mode="reflect"))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"filter_name": "wiener"}, "filter_name"),
        ({"filter_size": 4}, "filter_size"),
        ({"filter_size": 0}, "filter_size"),
        ({"image": np.zeros((8, 8), bool)}, "image"),
        ({"image": np.zeros((8, 8, 2), np.uint16)}, "image"),
    ],
)
def test_smooth_bad_input(kwargs, word):
    args = {"image": np.zeros((8, 8), np.uint16), **kwargs}
    with pytest.raises(ValueError, match=word):
        smooth.main(**args)


# ------------------------------------------------------------------ thresholds


def test_threshold_manual_finds_nuclei(site, dapi):
    mask = threshold_manual.main(dapi, 900).mask
    assert mask.dtype == np.bool_
    assert iou(mask, site["nuclei"] > 0) > 0.8
    assert not threshold_manual.main(dapi, int(dapi.max())).mask.any()


def test_threshold_manual_bad_input(dapi):
    with pytest.raises(ValueError, match="threshold"):
        threshold_manual.main(dapi, "high")
    with pytest.raises(ValueError, match="image"):
        threshold_manual.main(dapi.astype(np.int32), 100)


def test_threshold_otsu_finds_nuclei(site, dapi):
    mask = threshold_otsu.main(dapi).mask
    assert mask.dtype == np.bool_
    assert iou(mask, site["nuclei"] > 0) > 0.8
    # a lower correction factor takes in more pixels; clipping limits the threshold
    lower = threshold_otsu.main(dapi, correction_factor=0.5).mask
    assert lower.sum() > mask.sum() and (lower | mask).sum() == lower.sum()
    assert not threshold_otsu.main(dapi, min_threshold=int(dapi.max())).mask.any()
    assert threshold_otsu.main(dapi, max_threshold=0).mask.sum() == (dapi > 0).sum()


def test_threshold_otsu_empty_field_is_clipped():
    field = np.random.default_rng(0).normal(200, 15, (64, 64)).astype(np.uint16)
    assert threshold_otsu.main(field).mask.mean() > 0.2  # Otsu splits the noise
    assert not threshold_otsu.main(field, min_threshold=400).mask.any()
    assert not threshold_otsu.main(np.full((5, 5), 7, np.uint8)).mask.any()


def test_threshold_otsu_bad_input(dapi):
    with pytest.raises(ValueError, match="correction_factor"):
        threshold_otsu.main(dapi, correction_factor="1")
    with pytest.raises(ValueError, match="min_threshold"):
        threshold_otsu.main(dapi, min_threshold=10, max_threshold=5)


@pytest.mark.parametrize(
    "kwargs",
    [{"method": "niblack", "constant": -1}, {"method": "crosscorr", "constant": -100}],
)
def test_threshold_adaptive_finds_nuclei(site, dapi, kwargs):
    mask = threshold_adaptive.main(dapi, kernel_size=111, **kwargs).mask
    assert mask.dtype == np.bool_
    assert iou(mask, site["nuclei"] > 0) > 0.75


def test_threshold_adaptive_corrects_uneven_background():
    # two equal spots on a strong ramp: a global threshold misses one, a local one finds both
    ramp = np.tile(np.linspace(100, 1100, 200), (100, 1))
    image = ramp.copy()
    image[disk((50, 30), 8)] += 300
    image[disk((50, 170), 8)] += 300
    image = image.astype(np.uint16)
    assert threshold_otsu.main(image).mask[50, 30] == 0
    mask = threshold_adaptive.main(image, "crosscorr", kernel_size=41, constant=-100).mask
    assert mask[50, 30] and mask[50, 170]
    assert ndimage.label(mask)[1] == 2
    clipped = threshold_adaptive.main(image, "niblack", 41, -0.5, max_threshold=900).mask
    assert clipped[:, 190:].all()  # everything above max_threshold is foreground
    assert not threshold_adaptive.main(image, "niblack", 41, 0, min_threshold=2000).mask.any()


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"method": "sauvola"}, "method"),
        ({"kernel_size": 10}, "kernel_size"),
        ({"kernel_size": 1}, "kernel_size"),
        ({"constant": None}, "constant"),
        ({"min_threshold": 9, "max_threshold": 3}, "min_threshold"),
    ],
)
def test_threshold_adaptive_bad_input(dapi, kwargs, word):
    with pytest.raises(ValueError, match=word):
        threshold_adaptive.main(dapi, **kwargs)


# ------------------------------------------------------------------ fill, label, relabel


def test_fill_closes_holes(site):
    nuclei = site["nuclei"] > 0
    holes = nuclei & ~ndimage.binary_erosion(nuclei, iterations=3)  # rings
    holes[0, :] = False  # no ring open at the border
    filled = fill.main(holes).filled_mask
    assert filled.dtype == np.bool_
    inner = ndimage.binary_fill_holes(nuclei)
    assert iou(filled, inner) > 0.97
    # background touching the border is not a hole
    open_box = np.zeros((10, 10), bool)
    open_box[2:8, 2] = open_box[2, 2:8] = open_box[7, 2:8] = True
    assert fill.main(open_box).filled_mask.sum() == open_box.sum()


def test_fill_bad_input():
    with pytest.raises(ValueError, match="mask"):
        fill.main(np.zeros((4, 4), np.float32))


def test_label_counts_nuclei(site, dapi):
    mask = fill.main(threshold_otsu.main(dapi).mask).filled_mask
    labels = label.main(mask).label_image
    assert labels.dtype == np.int32
    n_true = int(site["nuclei"].max())
    assert abs(int(labels.max()) - n_true) <= 0.1 * n_true
    assert set(np.unique(labels)) == set(range(int(labels.max()) + 1))


def test_label_connectivity():
    mask = np.zeros((5, 5), bool)
    mask[1, 1] = mask[2, 2] = mask[3, 3] = True
    assert label.main(mask, 8).label_image.max() == 1
    assert label.main(mask, 4).label_image.max() == 3
    with pytest.raises(ValueError, match="connectivity"):
        label.main(mask, 6)


def test_relabel_consecutive(site):
    nuclei = site["nuclei"]
    gappy = np.where(nuclei % 3 == 0, 0, nuclei * 10)
    out = relabel.main(gappy).relabeled_image
    assert out.dtype == np.int32
    n = len(np.unique(gappy)) - 1
    assert out.max() == n and set(np.unique(out)) == set(range(n + 1))
    # same partition, same order
    pairs = np.unique(np.stack([gappy.ravel(), out.ravel()]), axis=1)
    assert pairs.shape[1] == n + 1 and np.all(np.diff(pairs[1]) > 0)
    with pytest.raises(ValueError, match="label_image"):
        relabel.main(np.full((3, 3), -1, np.int32))


# ------------------------------------------------------------------ filter


def test_filter_area(site):
    nuclei = site["nuclei"]
    areas = np.bincount(nuclei.ravel())[1:]
    cut = float(np.median(areas[areas > 0]))
    out = filter_module.main(nuclei, "area", lower_threshold=cut).filtered_mask
    assert out.dtype == np.int32
    kept = set(np.unique(out)) - {0}
    assert kept == {i + 1 for i, a in enumerate(areas) if a >= cut}
    assert np.array_equal(out[out > 0], nuclei[out > 0])  # labels kept
    binary = filter_module.main(nuclei > 0, "area", upper_threshold=cut).filtered_mask
    assert binary.dtype == np.bool_
    small = np.isin(nuclei, [i + 1 for i, a in enumerate(areas) if 0 < a <= cut])
    assert np.array_equal(binary, small)


def test_filter_shape_features():
    labels = np.zeros((120, 120), np.int32)
    labels[disk((30, 30), 15)] = 1  # round and convex
    labels[ellipse(30, 90, 6, 25)] = 2  # elongated
    labels[disk((90, 30), 12)] = 3  # two touching discs: concave
    labels[disk((90, 52), 12)] = 3
    feats = object_features(labels)
    assert feats["eccentricity"][0] < 0.2 < 0.9 < feats["eccentricity"][1]
    assert feats["circularity"][0] > 0.85 > feats["circularity"][2]
    assert feats["convexity"][0] > 0.95 > feats["convexity"][2]
    out = filter_module.main(labels, "eccentricity", upper_threshold=0.5).filtered_mask
    assert set(np.unique(out)) == {0, 1}
    out = filter_module.main(labels, "eccentricity", lower_threshold=0.95).filtered_mask
    assert set(np.unique(out)) == {0, 2}
    out = filter_module.main(labels, "convexity", lower_threshold=0.95).filtered_mask
    assert set(np.unique(out)) == {0, 1, 2}
    out = filter_module.main(labels, "circularity", 0.8, 1).filtered_mask
    assert set(np.unique(out)) == {0, 1}


def test_filter_bad_input(site):
    with pytest.raises(ValueError, match="feature"):
        filter_module.main(site["nuclei"], "volume", 1)
    with pytest.raises(ValueError, match="lower_threshold"):
        filter_module.main(site["nuclei"], "area", "10")
    with pytest.raises(ValueError, match="mask"):
        filter_module.main(site["nuclei"].astype(float), "area", 10)


# ------------------------------------------------------------------ expand_or_shrink


def test_expand_grows_by_n():
    labels = np.zeros((200, 200), np.int32)
    labels[disk((60, 60), 20)] = 4
    labels[disk((140, 140), 10)] = 9
    for n in (3, 8):
        out = expand_or_shrink.main(labels, n).expanded_image
        assert out.dtype == np.int32
        for lab, r in ((4, 20), (9, 10)):
            # the area of the (digital) disc of radius r + n
            assert abs((out == lab).sum() / len(disk((0, 0), r + n)[0]) - 1) < 0.03
    shrunk = expand_or_shrink.main(labels, -5).expanded_image
    assert abs((shrunk == 4).sum() / len(disk((0, 0), 15)[0]) - 1) < 0.06
    assert not (expand_or_shrink.main(labels, -11).expanded_image == 9).any()
    assert np.array_equal(expand_or_shrink.main(labels, 0).expanded_image, labels)


def test_expand_never_merges(site):
    nuclei = site["nuclei"]
    out = expand_or_shrink.main(nuclei, 6).expanded_image
    assert np.array_equal(out[nuclei > 0], nuclei[nuclei > 0])
    assert (out > 0).sum() > (nuclei > 0).sum() * 1.5
    assert set(np.unique(out)) == set(np.unique(nuclei))
    # each object stays one connected piece
    for lab, where in enumerate(ndimage.find_objects(out), 1):
        if where is not None:
            assert ndimage.label(out[where] == lab)[1] == 1
    shrunk = expand_or_shrink.main(nuclei, -2).expanded_image
    assert np.all((shrunk == 0) | (shrunk == nuclei))
    assert (shrunk > 0).sum() < (nuclei > 0).sum()


def test_expand_bad_input(site):
    with pytest.raises(ValueError, match="n must"):
        expand_or_shrink.main(site["nuclei"], 1.5)
    with pytest.raises(ValueError, match="image"):
        expand_or_shrink.main(site["dapi"].astype(np.float32), 1)


# ------------------------------------------------------------------ separate_clumps

CLUMP_ARGS = {
    "min_cut_area": 40,
    "max_convexity": 0.92,
    "max_circularity": 0.8,
    "min_area": 100,
    "max_area": 2000,
}


@pytest.fixture(scope="module")
def clumped():
    """A site whose mask merges two touching nuclei (and the other nuclei as they are)."""
    site = simulated_site((256, 256), seed=2)
    nuclei = site["nuclei"]
    for a in range(1, int(nuclei.max()) + 1):
        near = np.unique(nuclei[ndimage.binary_dilation(nuclei == a, iterations=2)])
        near = near[(near != 0) & (near != a)]
        if near.size:
            b = int(near[0])
            break
    pair = ndimage.binary_closing((nuclei == a) | (nuclei == b), np.ones((3, 3)), iterations=2)
    mask = (nuclei > 0) | pair
    return site, mask, (a, b)


def test_separate_clumps_splits_two_nuclei(clumped):
    site, mask, (a, b) = clumped
    nuclei = site["nuclei"]
    n_true = int(nuclei.max())
    assert ndimage.label(mask, np.ones((3, 3)))[1] == n_true - 1
    out = separate_clumps.main(mask, site["dapi"], **CLUMP_ARGS).separated_label_image
    assert out.dtype == np.int32
    assert out.max() == n_true  # the clump is cut in two, nothing else is
    for true_label in (a, b):
        truth = nuclei == true_label
        best = max(iou(out == k, truth) for k in np.unique(out[truth]) if k)
        assert best > 0.85


def test_separate_clumps_keeps_single_and_small(clumped):
    site, mask, _ = clumped
    n_true = int(site["nuclei"].max())
    # too small a clump to be selected
    out = separate_clumps.main(mask, site["dapi"], **{**CLUMP_ARGS, "min_area": 5000})
    assert out.separated_label_image.max() == n_true - 1
    # parts must be larger than min_cut_area: no cut
    out = separate_clumps.main(mask, site["dapi"], **{**CLUMP_ARGS, "min_cut_area": 1000})
    assert out.separated_label_image.max() == n_true - 1
    # test mode cuts nothing but shows the selection
    out = separate_clumps.main(
        mask, site["dapi"], **CLUMP_ARGS, selection_test_mode=True, plot=True
    )
    assert out.separated_label_image.max() == n_true - 1
    shown = np.asarray(json.loads(out.figure)["data"][1]["z"])
    assert 0 < np.count_nonzero(shown) < mask.sum() / 4


def test_separate_clumps_bad_input(clumped):
    site, mask, _ = clumped
    with pytest.raises(ValueError, match="trimming"):
        separate_clumps.main(mask, site["dapi"], trimming="yes")
    with pytest.raises(ValueError, match="intensity_image"):
        separate_clumps.main(mask, site["dapi"][:100])


# ------------------------------------------------------------------ segment_secondary


def test_segment_secondary_finds_cells():
    ious = []
    for seed in (0, 1):
        site = simulated_site((256, 256), seed=seed)
        stain = smooth.main(site["stain"], "gaussian", 5).smoothed_image
        nuclei = site["nuclei"]
        cells = segment_secondary.main(nuclei, stain, 50, 230, 400).secondary_label_image
        assert cells.dtype == np.int32
        assert set(np.unique(cells)) == set(np.unique(nuclei))
        assert np.array_equal(cells[nuclei > 0], nuclei[nuclei > 0])  # contains its nucleus
        for lab, where in enumerate(ndimage.find_objects(cells), 1):
            assert ndimage.label(cells[where] == lab)[1] == 1  # one piece
        ious.append(mean_label_iou(cells, site["cells"]))
    assert min(ious) >= 0.7


def test_segment_secondary_thresholds(site):
    stain = smooth.main(site["stain"]).smoothed_image
    nuclei = site["nuclei"]
    # everything is foreground: cells fill the image
    cells = segment_secondary.main(nuclei, stain, 0, 0, 0).secondary_label_image
    assert (cells > 0).all()
    # nothing is foreground: cells are their nuclei
    cells = segment_secondary.main(nuclei, stain, 0, 65535, 65535).secondary_label_image
    assert np.array_equal(cells, nuclei)
    empty = segment_secondary.main(np.zeros_like(nuclei), stain).secondary_label_image
    assert not empty.any()


def test_segment_secondary_bad_input(site):
    with pytest.raises(ValueError, match="intensity_image"):
        segment_secondary.main(site["nuclei"], site["stain"][:, :100])
    with pytest.raises(ValueError, match="min_threshold"):
        segment_secondary.main(site["nuclei"], site["stain"], 5, 200, 100)
    with pytest.raises(ValueError, match="primary_label_image"):
        segment_secondary.main(site["nuclei"].astype(float), site["stain"])


# ------------------------------------------------------------------ detect_blobs


def spots_image(n=30, shape=(128, 128), seed=1):
    rng = np.random.default_rng(seed)
    centres = []
    while len(centres) < n:
        p = rng.uniform(6, np.array(shape) - 6)
        if all(np.hypot(*(p - q)) > 8 for q in centres):
            centres.append(p)
    centres = np.array(centres)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    signal = np.zeros(shape)
    for y, x in centres:
        signal += 300 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.2**2))
    ramp = np.linspace(0, 300, shape[1])[None, :]
    image = 200 + ramp + signal + rng.normal(0, 10, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), centres


def test_detect_blobs_finds_spots():
    image, centres = spots_image()
    out = detect_blobs.main(image, np.ones(image.shape, bool), threshold=5)
    assert out.centroids.dtype == np.int32 and out.blobs.dtype == np.int32
    n = int(out.blobs.max())
    positions = np.argwhere(out.centroids > 0)
    assert len(positions) == n == len(centres)
    distance = np.hypot(*(positions[:, None, :] - centres[None]).transpose(2, 0, 1))
    assert (distance.min(axis=0) < 1.5).all()  # every spot found at its place
    # centroids lie in their blob, with its label
    labels = out.centroids[out.centroids > 0]
    assert np.array_equal(out.blobs[out.centroids > 0], labels)
    assert set(labels) == set(range(1, n + 1))
    areas = np.bincount(out.blobs.ravel())[1:]
    assert areas.min() >= 5 and areas.max() <= 100


def test_detect_blobs_respects_mask_and_area():
    image, centres = spots_image()
    mask = np.zeros(image.shape, np.int32)
    mask[:, :64] = 3
    out = detect_blobs.main(image, mask, threshold=5)
    assert not out.blobs[:, 64:].any()
    assert out.blobs.max() == (centres[:, 1] < 62).sum()
    # deblending: two overlapping spots give two blobs
    pair = np.full((40, 40), 100.0)
    yy, xx = np.mgrid[:40, :40]
    for x in (16, 23):
        pair += 400 * np.exp(-((yy - 20) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    pair = pair.astype(np.uint16) + np.random.default_rng(0).integers(0, 5, pair.shape).astype(
        np.uint16
    )
    out = detect_blobs.main(pair, np.ones(pair.shape, bool), threshold=5, mean_area=7)
    assert out.blobs.max() == 2
    none = detect_blobs.main(image, np.ones(image.shape, bool), threshold=5, min_area=60)
    assert none.blobs.max() == 0 and not none.centroids.any()


def test_detect_blobs_bad_input():
    image, _ = spots_image(n=2, shape=(32, 32))
    with pytest.raises(ValueError, match="min_area"):
        detect_blobs.main(image, image > 0, min_area=50, max_area=10)
    with pytest.raises(ValueError, match="mask"):
        detect_blobs.main(image, np.ones((32, 31), bool))
    with pytest.raises(ValueError, match="threshold"):
        detect_blobs.main(image, image > 0, threshold="3")


# ------------------------------------------------------------------ figures


def _calls(site):
    dapi, stain, nuclei = site["dapi"], site["stain"], site["nuclei"]
    return [
        (smooth, {"image": dapi}),
        (threshold_manual, {"image": dapi, "threshold": 500}),
        (threshold_otsu, {"image": dapi}),
        (threshold_adaptive, {"image": dapi, "kernel_size": 31}),
        (fill, {"mask": nuclei > 0}),
        (label, {"mask": nuclei > 0}),
        (relabel, {"label_image": nuclei}),
        (filter_module, {"mask": nuclei, "feature": "area", "lower_threshold": 50}),
        (expand_or_shrink, {"image": nuclei, "n": 2}),
        (separate_clumps, {"mask": nuclei > 0, "intensity_image": dapi}),
        (segment_secondary, {"primary_label_image": nuclei, "intensity_image": stain}),
        (detect_blobs, {"image": stain, "mask": nuclei}),
    ]


def test_figures(site):
    for module, kwargs in _calls(site):
        without = module.main(**kwargs)
        assert without.figure == "", module.__name__
        figure = json.loads(module.main(**kwargs, plot=True).figure)
        assert figure["data"] and "layout" in figure, module.__name__
        assert list(without._fields)[-1] == "figure"


def test_inputs_unchanged(site):
    for module, kwargs in _calls(site):
        copies = {k: v.copy() for k, v in kwargs.items() if isinstance(v, np.ndarray)}
        output = module.main(**kwargs)
        for name, value in copies.items():
            assert np.array_equal(kwargs[name], value), (module.__name__, name)
            for result in output[:-1]:
                assert not np.shares_memory(result, kwargs[name]), (module.__name__, name)


def test_watershed_by_component_is_the_whole_image_watershed():
    from skimage.segmentation import watershed

    site = simulated_site((512, 512), seed=3)
    rng = np.random.default_rng(3)
    landscape = rng.random((512, 512), dtype=np.float32)
    landscape += ndimage.gaussian_filter(site["stain"].astype(np.float32), 3) / -1000.0
    mask = ndimage.binary_dilation(site["nuclei"] > 0, iterations=6)
    mask[:, 250:254] = False  # more components, one of them without a seed
    mask[5:15, 5:15] = True
    seeds = np.where(mask, site["nuclei"], 0).astype(np.int32)
    assert ndimage.label(mask)[1] > 3
    expected = watershed(landscape, markers=seeds, mask=mask)
    got = segment_secondary.watershed_by_component(landscape, seeds, mask)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
