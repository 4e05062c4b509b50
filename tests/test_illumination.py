"""Illumination statistics: exact merging, accuracy, percentiles, smoothing and correction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi

import tmlib.models as tm
from tmlib import illumination
from tmlib.illumination import (
    BLOCK_IMAGES,
    Correction,
    IlluminationStats,
    correct,
    log10_image,
    smooth,
)

#: bounds of the fixed-point rounding, see the module's docstring
MEAN_TOLERANCE = 2.0**-26
VARIANCE_TOLERANCE = 2 * (1 + 2 * np.log10(65535) / 2) * 2.0**-26


def _images(
    n: int, seed: int = 0, shape=(32, 48), dtype=np.uint16, zeros: bool = True
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    field = 1.0 - 0.25 * (((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2)
    top = 3000 if dtype == np.uint16 else 200
    images = []
    for _ in range(n):
        image = rng.integers(top // 15, top) * field * rng.uniform(0.8, 1.2, field.shape)
        if zeros:  # some zeros, which stay 0 in log space
            image[rng.random(field.shape) < 0.01] = 0
        images.append(image.astype(dtype))
    return images


def _stats(images: list[np.ndarray]) -> IlluminationStats:
    stats = IlluminationStats.empty(images[0].shape, images[0].dtype)
    for image in images:
        stats.add(image)
    return stats


def _assert_identical(a: IlluminationStats, b: IlluminationStats) -> None:
    assert a.n == b.n
    np.testing.assert_array_equal(a.log_sum, b.log_sum)
    np.testing.assert_array_equal(a.sq_sum, b.sq_sum)
    np.testing.assert_array_equal(a.histogram, b.histogram)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    assert a.percentiles() == b.percentiles()


def test_log10_keeps_zeros_at_zero():
    image = np.array([[0, 1, 10, 1000]], dtype=np.uint16)
    np.testing.assert_array_equal(log10_image(image), [[0.0, 0.0, 1.0, 3.0]])


@pytest.mark.parametrize("n", [2, 7, BLOCK_IMAGES, BLOCK_IMAGES + 1, 3 * BLOCK_IMAGES + 5])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_statistics_match_numpy_within_the_fixed_point_bounds(n: int, dtype):
    images = _images(n, seed=n, dtype=dtype)
    stats = _stats(images)
    logs = np.stack([log10_image(i) for i in images])
    assert stats.n == n
    assert stats.mean.dtype == stats.std.dtype == np.float64
    assert stats.mean.shape == stats.std.shape == images[0].shape
    np.testing.assert_allclose(stats.mean, logs.mean(axis=0), rtol=0, atol=MEAN_TOLERANCE)
    want = logs.var(axis=0, ddof=1)
    np.testing.assert_allclose(stats.std**2, want, rtol=0, atol=VARIANCE_TOLERANCE)
    assert np.abs(stats.std - np.sqrt(want)).max() < 1e-6  # stds here are ~0.03..0.3


def test_statistics_of_extreme_intensities_do_not_overflow():
    """Full blocks of 0 and 65535 (the largest table entries) stay exact."""
    n = 2 * BLOCK_IMAGES + 3
    images = [np.full((4, 5), 65535 if i % 2 else 0, np.uint16) for i in range(n)]
    images[0][0, 0] = 1
    stats = _stats(images)
    logs = np.stack([log10_image(i) for i in images])
    np.testing.assert_allclose(stats.mean, logs.mean(axis=0), atol=MEAN_TOLERANCE)
    np.testing.assert_allclose(stats.std**2, logs.var(axis=0, ddof=1), atol=VARIANCE_TOLERANCE)


@pytest.mark.parametrize("batches", [[40], [1] * 40, [3, 3, 34], [17, 16, 7], [39, 1]])
def test_merged_batches_are_identical_to_one_batch(batches):
    images = _images(40, seed=3)
    whole = _stats(images)
    parts, start = [], 0
    for size in batches:
        parts.append(_stats(images[start : start + size]))
        start += size
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    _assert_identical(merged, whole)
    # in any order
    backwards = parts[-1]
    for part in reversed(parts[:-1]):
        backwards = backwards.merge(part)
    _assert_identical(backwards, whole)


@pytest.mark.parametrize("batches", [[40], [1] * 40, [3, 3, 34], [17, 16, 7]])
def test_updating_in_place_equals_merging_in_any_order(batches):
    images = _images(40, seed=5)
    whole = _stats(images)
    parts, start = [], 0
    for size in batches:
        parts.append(_stats(images[start : start + size]))
        start += size
    for order in (parts, parts[::-1], parts[1:] + parts[:1]):
        total = IlluminationStats.empty(images[0].shape)
        for part in order:
            total.update(part)
        _assert_identical(total, whole)
    # a total with images still in its block accumulator folds them first
    total = IlluminationStats.empty(images[0].shape)
    total.add(images[0])
    total.update(_stats(images[1:]))
    _assert_identical(total, whole)
    with pytest.raises(ValueError, match="cannot merge"):
        total.update(IlluminationStats.empty((4, 5)))


@pytest.mark.parametrize("chunk", [100, 1536, 4096])
def test_chunked_accumulation_is_identical(monkeypatch, chunk: int):
    """Chunks of any size (also ones that do not divide the image) give the same sums."""
    images = _images(BLOCK_IMAGES + 5, seed=8)
    whole = _stats(images)
    monkeypatch.setattr(illumination, "_CHUNK", chunk)
    _assert_identical(_stats(images), whole)
    # a non-contiguous image is accumulated like its copy
    wide = [np.repeat(i, 2, axis=1)[:, ::2] for i in images]
    assert not wide[0].flags.c_contiguous
    _assert_identical(_stats(wide), whole)


def test_merge_rejects_other_shapes_and_dtypes():
    a = IlluminationStats.empty((4, 4))
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(IlluminationStats.empty((4, 5)))
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(IlluminationStats.empty((4, 4), np.uint8))


def test_histogram_counts_every_intensity_exactly():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    stats = IlluminationStats.empty(values.shape)
    stats.add(values)
    stats.add(values[::-1].copy())
    np.testing.assert_array_equal(stats.histogram, np.full(65536, 2))
    small = np.arange(256, dtype=np.uint8).reshape(16, 16)
    stats8 = IlluminationStats.empty(small.shape, np.uint8)
    stats8.add(small)
    np.testing.assert_array_equal(stats8.histogram, np.ones(256))


def test_histogram_of_a_huge_image_falls_back_to_bincount(monkeypatch):
    monkeypatch.setattr(illumination, "_CALCHIST_MAX_PIXELS", 10)
    image = _images(1)[0]
    stats = _stats([image])
    np.testing.assert_array_equal(stats.histogram, np.bincount(image.ravel(), minlength=65536))


def test_percentiles_are_exact_for_integers():
    images = _images(5, seed=1)
    pooled = np.concatenate([i.ravel() for i in images])
    got = _stats(images).percentiles(np.array([0.0, 0.001, 1.0, 50.0, 99.9, 100.0]))
    for level, value in got.items():
        assert value == np.percentile(pooled, level, method="inverted_cdf")


def test_stored_percentile_levels_include_the_display_defaults():
    levels = set(illumination.PERCENTILE_LEVELS.tolist())
    assert {0.0, 0.001, 0.1, 50.0, 99.9, 99.99, 100.0} <= levels


def test_empty_statistics():
    stats = IlluminationStats.empty((3, 4))
    assert stats.n == 0
    np.testing.assert_array_equal(stats.mean, np.zeros((3, 4)))
    np.testing.assert_array_equal(stats.std, np.zeros((3, 4)))
    assert set(stats.percentiles().values()) == {0.0}
    with pytest.raises(ValueError, match="uint8 or uint16"):
        IlluminationStats.empty((3, 4), np.float32)


def test_images_of_another_shape_or_dtype_are_rejected():
    stats = IlluminationStats.empty((4, 4))
    with pytest.raises(ValueError, match="expected"):
        stats.add(np.zeros((5, 4), np.uint16))
    with pytest.raises(ValueError, match="dtype uint8, expected uint16"):
        stats.add(np.zeros((4, 4), np.uint8))


def test_save_and_load_round_trip(tmp_path: Path):
    stats = _stats(_images(BLOCK_IMAGES + 3, seed=5))
    path = tmp_path / "sub" / "part.h5"
    stats.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["part.h5"]  # no temp file left
    _assert_identical(IlluminationStats.load(path), stats)


def test_load_rejects_other_fixed_point_constants(tmp_path: Path, monkeypatch):
    path = tmp_path / "part.h5"
    _stats(_images(2)).save(path)
    monkeypatch.setattr(illumination, "LOG_BITS", illumination.LOG_BITS - 1)
    with pytest.raises(ValueError, match="fixed-point bits"):
        IlluminationStats.load(path)


# ----------------------------------------------------------------- smoothing


@pytest.mark.parametrize("shape", [(64, 64), (37, 90), (5, 7)])
def test_smooth_equals_scipy_gaussian_filter(shape):
    image = np.random.default_rng(1).normal(2.5, 0.3, shape)
    want = ndi.gaussian_filter(image, 5.0, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(smooth(image, 5.0), want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(smooth(image, 0), image)


def test_smoothed_statistics_and_closest_percentile():
    rng = np.random.default_rng(2)
    stats = tm.IllumstatsImages(
        mean=rng.normal(2.5, 0.1, (40, 50)),
        std=rng.uniform(0.05, 0.2, (40, 50)),
        percentiles={0.001: 3.0, 0.1: 10.0, 50.0: 500.0, 99.9: 4000.0, 99.99: 4100.0},
    )
    smoothed = stats.smoothed()
    np.testing.assert_allclose(
        smoothed.mean, ndi.gaussian_filter(stats.mean, 5.0, mode="reflect"), atol=1e-12
    )
    np.testing.assert_allclose(
        smoothed.std, ndi.gaussian_filter(stats.std, 5.0, mode="reflect"), atol=1e-12
    )
    assert smoothed.mean.std() < stats.mean.std() / 5
    assert smoothed.percentiles == stats.percentiles
    assert stats.smoothed(sigma=2.0).mean.std() > smoothed.mean.std()
    assert stats.closest_percentile(99.9) == 4000.0
    assert stats.closest_percentile(99.97) == 4100.0
    assert stats.closest_percentile(100) == 4100.0
    assert stats.closest_percentile(0) == 3.0
    assert stats.closest_percentile(30) == 500.0
    assert stats.closest_percentile(25.05) == 10.0  # a tie: the lower level
    with pytest.raises(ValueError, match="no percentiles"):
        tm.IllumstatsImages(stats.mean, stats.std, {}).closest_percentile(50)


# ---------------------------------------------------------------- correction


def _reference(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """§5.4 written out: log10 (0 -> 1e-10), standardise, rescale, 10**x, cast back."""
    x = np.log10(np.where(image == 0, 1e-10, image.astype(np.float64)))
    s = np.where(std > 0, std, 1.0)
    x = (x - mean) / s * std.mean() + mean.mean()
    info = np.iinfo(image.dtype)
    return np.clip(np.round(10.0**x), info.min, info.max).astype(image.dtype)


def test_correction_flattens_the_illumination_field():
    images = _images(50, seed=2, zeros=False)
    stats = _stats(images)
    before = np.stack(images).mean(axis=0)
    after = np.stack([correct(i, stats.mean, stats.std) for i in images]).mean(axis=0)
    assert correct(images[0], stats.mean, stats.std).dtype == np.uint16
    # the vignetting gradient (centre vs corner) is gone after correction
    assert before[16, 24] / before[0, 0] > 1.5
    assert abs(after[16, 24] / after[0, 0] - 1.0) < 0.1


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_fast_correction_equals_the_reference_formula(dtype):
    rng = np.random.default_rng(4)
    shape = (300, 400)
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, shape, endpoint=True).astype(dtype)
    image[:3] = 0
    image[-3:] = top
    mean = rng.normal(np.log10(top) / 2, 0.2, shape)
    std = rng.uniform(0.02, 0.3, shape)
    std[0, :10] = 0  # a pixel that never varied: divided by 1
    want = _reference(image, mean, std)
    np.testing.assert_array_equal(correct(image, mean, std), want)
    fast = Correction(mean, std)
    got = fast(image)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    # built from (smoothed) statistics, as consumers do
    stats = tm.IllumstatsImages(mean, std, {}).smoothed()
    np.testing.assert_array_equal(
        Correction.from_stats(stats)(image), _reference(image, stats.mean, stats.std)
    )


def test_fast_correction_of_simulated_images_equals_correct():
    images = _images(20, seed=6)
    stats = _stats(images)
    smoothed = tm.IllumstatsImages(stats.mean, stats.std, {}).smoothed(2.0)
    fast = Correction.from_stats(smoothed)
    for image in images:
        np.testing.assert_array_equal(fast(image), correct(image, smoothed.mean, smoothed.std))


def test_correction_rejects_another_shape():
    fast = Correction(np.zeros((4, 4)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        fast(np.zeros((4, 5), np.uint16))
    with pytest.raises(ValueError, match="2D of one shape"):
        Correction(np.zeros((4, 4)), np.ones((4, 5)))
