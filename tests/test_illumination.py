"""Illumination statistics: exact merging, percentiles and correction."""

import numpy as np
import pytest

from tmlib.illumination import IlluminationStats, correct, log10_image


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:48]
    field = 1.0 - 0.25 * (((yy - 16) / 16) ** 2 + ((xx - 24) / 24) ** 2)  # vignetting
    return [
        (rng.integers(200, 3000) * field * rng.uniform(0.8, 1.2, field.shape)).astype(np.uint16)
        for _ in range(n)
    ]


def _stats(images: list[np.ndarray]) -> IlluminationStats:
    stats = IlluminationStats.empty(images[0].shape)
    for image in images:
        stats.add(image)
    return stats


def test_log10_keeps_zeros_at_zero():
    image = np.array([[0, 1, 10, 1000]], dtype=np.uint16)
    np.testing.assert_array_equal(log10_image(image), [[0.0, 0.0, 1.0, 3.0]])


def test_statistics_match_numpy():
    images = _images(7)
    stats = _stats(images)
    logs = np.stack([log10_image(i) for i in images])
    assert stats.n == 7
    np.testing.assert_allclose(stats.mean, logs.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, logs.std(axis=0, ddof=1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("batches", [[10], [1] * 10, [3, 3, 4], [9, 1]])
def test_merged_batches_equal_one_batch(batches):
    images = _images(10, seed=3)
    whole = _stats(images)
    parts, start = [], 0
    for size in batches:
        parts.append(_stats(images[start : start + size]))
        start += size
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert merged.n == whole.n
    np.testing.assert_array_equal(merged.histogram, whole.histogram)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.std, whole.std, rtol=1e-9, atol=1e-12)
    assert merged.percentiles() == whole.percentiles()


def test_percentiles_are_exact_for_integers():
    images = _images(5, seed=1)
    pooled = np.concatenate([i.ravel() for i in images])
    got = _stats(images).percentiles(np.array([0.0, 1.0, 50.0, 99.9, 100.0]))
    for level, value in got.items():
        assert value == np.percentile(pooled, level, method="inverted_cdf")


def test_correction_flattens_the_illumination_field():
    images = _images(50, seed=2)
    stats = _stats(images)
    before = np.stack(images).mean(axis=0)
    after = np.stack([correct(i, stats.mean, stats.std) for i in images]).mean(axis=0)
    assert correct(images[0], stats.mean, stats.std).dtype == np.uint16
    # the vignetting gradient (centre vs corner) is gone after correction
    assert before[16, 24] / before[0, 0] > 1.5
    assert abs(after[16, 24] / after[0, 0] - 1.0) < 0.1


def test_images_of_another_shape_are_rejected():
    stats = IlluminationStats.empty((4, 4))
    with pytest.raises(ValueError, match="expected"):
        stats.add(np.zeros((5, 4), np.uint16))
