"""Illumination statistics and correction (the numbers behind ``corilla``).

Statistics are kept as sums, so that statistics of batches of images merge
into exactly those of all images (up to float64 rounding): run jobs can each
take a batch and the collect job adds them up.

* per pixel: count, sum and sum of squares of log10 intensities (zeros stay 0);
* per channel: a histogram of raw intensities, from which pooled percentiles
  are read exactly (integer data).

Consumers correct an image with :func:`correct` (reference §5.4): log10, then
standardise each pixel by the channel's mean and std images, rescale by their
overall means, and transform back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: percentile levels stored with a channel's statistics: 0, 0.1, ..., 100 and
#: the fine upper tail that display clipping uses (99.9, 99.99, ...)
PERCENTILE_LEVELS = np.unique(
    np.concatenate([np.round(np.arange(0, 100.001, 0.1), 3), [99.95, 99.99, 99.999]])
)


def _log10_table(levels: int) -> np.ndarray:
    table = np.zeros(levels, dtype=np.float64)
    np.log10(np.arange(1, levels, dtype=np.float64), out=table[1:])
    return table


# Integer images have few distinct values: looking log10 up in a table is
# several times faster than computing it per pixel.
_LOG10 = {8: _log10_table(1 << 8), 16: _log10_table(1 << 16)}
_LOG10_SQUARED = {bits: table * table for bits, table in _LOG10.items()}


def log10_image(image: np.ndarray) -> np.ndarray:
    """log10 of an intensity image with zeros mapped to 0.

    Parameters
    ----------
    image : ndarray, shape (M, N), dtype uint8 or uint16

    Returns
    -------
    ndarray, shape (M, N), dtype float64
    """
    return _LOG10[image.dtype.itemsize * 8][image]


@dataclass
class IlluminationStats:
    """Mergeable statistics of a set of same-sized images of one channel.

    Attributes
    ----------
    n : int
        Number of images added.
    total, total_sq : ndarray, shape (M, N), dtype float64
        Per-pixel sum and sum of squares of log10 intensities.
    histogram : ndarray, shape (2**bits,), dtype int64
        Counts of raw intensities over all pixels of all images.
    """

    n: int
    total: np.ndarray
    total_sq: np.ndarray
    histogram: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int], dtype: np.dtype | type = np.uint16) -> IlluminationStats:
        levels = 1 << (8 * np.dtype(dtype).itemsize)
        return cls(
            0,
            np.zeros(shape, np.float64),
            np.zeros(shape, np.float64),
            np.zeros(levels, np.int64),
        )

    def add(self, image: np.ndarray) -> None:
        """Add one image (same shape; uint8 or uint16 as the histogram)."""
        if image.shape != self.total.shape:
            raise ValueError(f"image of shape {image.shape}, expected {self.total.shape}")
        bits = image.dtype.itemsize * 8
        self.total += _LOG10[bits][image]
        self.total_sq += _LOG10_SQUARED[bits][image]
        self.histogram += np.bincount(image.ravel(), minlength=self.histogram.size)[
            : self.histogram.size
        ]
        self.n += 1

    def merge(self, other: IlluminationStats) -> IlluminationStats:
        """Statistics of both sets of images."""
        if other.total.shape != self.total.shape or other.histogram.size != self.histogram.size:
            raise ValueError("cannot merge statistics of differently sized images")
        return IlluminationStats(
            self.n + other.n,
            self.total + other.total,
            self.total_sq + other.total_sq,
            self.histogram + other.histogram,
        )

    @property
    def mean(self) -> np.ndarray:
        """Per-pixel mean of log10 intensities, shape (M, N), float64."""
        return self.total / max(self.n, 1)

    @property
    def std(self) -> np.ndarray:
        """Per-pixel sample standard deviation of log10 intensities (n - 1 in the denominator)."""
        if self.n < 2:
            return np.zeros_like(self.total)
        variance = (self.total_sq - self.total * self.total / self.n) / (self.n - 1)
        return np.sqrt(np.maximum(variance, 0.0))

    def percentiles(self, levels: np.ndarray = PERCENTILE_LEVELS) -> dict[float, float]:
        """Intensity at each percentile level of all pixels pooled (lower value at ties)."""
        cumulative = np.cumsum(self.histogram)
        count = cumulative[-1]
        if count == 0:
            return {float(level): 0.0 for level in levels}
        ranks = np.ceil(np.asarray(levels) / 100.0 * count).clip(1, count)
        values = np.searchsorted(cumulative, ranks, side="left")
        return {float(level): float(v) for level, v in zip(levels, values, strict=True)}


def correct(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Correct an image for uneven illumination.

    Parameters
    ----------
    image : ndarray, shape (M, N), dtype uint8 or uint16
    mean, std : ndarray, shape (M, N), dtype float64
        The channel's statistics of log10 intensities.

    Returns
    -------
    ndarray, shape (M, N), same dtype as `image`
        Clipped to the dtype's range.
    """
    logs = np.log10(np.maximum(image, 1e-10).astype(np.float64))
    safe_std = np.where(std > 0, std, 1.0)
    logs = (logs - mean) / safe_std * std.mean() + mean.mean()
    info = np.iinfo(image.dtype)
    return np.clip(np.round(10.0**logs), info.min, info.max).astype(image.dtype)
