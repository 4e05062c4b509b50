"""Illumination statistics and correction (the numbers behind ``corilla``).

Statistics
----------
:class:`IlluminationStats` keeps, for a set of same-sized images of one
channel,

* per pixel: the sum of log10 intensities (zeros stay 0, as in the original)
  and the sum of their squared deviations from a fixed centre, from which
  mean and sample std follow;
* per channel: a histogram of raw intensities, from which percentiles of all
  pixels pooled are read exactly (integer data). The original averaged
  per-image percentiles instead; pooled ones merge exactly across batches.

The sums are **integers** (fixed point): each log10 value is rounded to a
multiple of ``2**-LOG_BITS`` and each squared deviation from a fixed centre
to a multiple of ``2**-SQ_BITS``. Integer addition is associative, so the
statistics of any split of the images into batches merge into *bit-identical*
statistics of all images: corilla's result does not depend on its batch size
or on the order in which run jobs finish.

The price is the rounding of each value to ``2**-26`` (1.5e-8) at most. Against
float64 statistics of the same images, the mean of log10 intensities is off by
at most 1.5e-8 and the variance by at most ``(1 + 2 * centre) * 2**-26 * n /
(n - 1)`` (centre = log10(65535) / 2 = 2.41 for 16-bit data: < 9e-8 for many
images, < 1.8e-7 for two). A log10 error of 1.5e-8 is a relative intensity error
of 3.5e-8, far below one grey level; in practice the errors of different
intensities partly cancel and the differences are smaller still.

Why fixed point: it is also the fast way. One table look-up per pixel fetches
both numbers packed into one uint64 (log in the low, squared deviation in the
high 32 bits), and one addition accumulates both. The 32-bit halves of this
"block" accumulator hold up to :data:`BLOCK_IMAGES` images without carrying
into each other; then they are folded into uint64 totals. Images are processed
in chunks of pixels that keep the temporaries in the CPU cache. Together this
is several times faster than float64 sums (see ``benchmarks/corilla.py``).

Correction
----------
Consumers correct an image with :class:`Correction` (built once per channel
from the Gaussian-smoothed statistics, see
:meth:`tmlib.models.IllumstatsImages.smoothed`) or with the reference
function :func:`correct` (reference §5.4): log10 (0 replaced by 1e-10), then
standardise each pixel by the channel's mean and std images, rescale by their
overall means, and transform back.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from tmlib import storage

#: percentile levels stored with a channel's statistics: 0, 0.1, ..., 100 plus
#: fine tails for display clipping (the original's defaults are 0.001 and 99.9)
PERCENTILE_LEVELS = np.unique(
    np.concatenate(
        [
            np.round(np.arange(0, 100.001, 0.1), 3),
            [0.001, 0.005, 0.01, 0.05, 99.95, 99.99, 99.995, 99.999],
        ]
    )
)

#: fixed-point precision of log10 values (fraction bits)
LOG_BITS = 25
#: fixed-point precision of squared deviations of log10 values from the centre
SQ_BITS = 25
#: images accumulated in 32-bit halves before folding into the uint64 totals
#: (folding costs about as much as adding one image: 16 keeps it at ~5 %)
BLOCK_IMAGES = 16


def _log10_table(levels: int) -> np.ndarray:
    table = np.zeros(levels, dtype=np.float64)
    np.log10(np.arange(1, levels, dtype=np.float64), out=table[1:])
    return table


def _centre(levels: int) -> float:
    """Centre of the log10 range of a dtype: squared deviations from it stay small."""
    return float(np.log10(levels - 1)) / 2.0


def _packed_table(levels: int) -> np.ndarray:
    """uint64 per intensity: fixed-point log10 (low 32 bits), squared deviation (high 32)."""
    logs = _log10_table(levels)
    low = np.round(logs * 2.0**LOG_BITS).astype(np.uint64)
    high = np.round((logs - _centre(levels)) ** 2 * 2.0**SQ_BITS).astype(np.uint64)
    # a block of images must never carry out of a 32-bit half
    if BLOCK_IMAGES * max(int(low.max()), int(high.max())) >= 1 << 32:
        raise AssertionError("fixed-point constants overflow the 32-bit block accumulator")
    return low | (high << np.uint64(32))


# Integer images have few distinct values: looking log10 up in a table is
# several times faster than computing it per pixel.
_LOG10 = {8: _log10_table(1 << 8), 16: _log10_table(1 << 16)}
_PACKED = {8: _packed_table(1 << 8), 16: _packed_table(1 << 16)}

# cv2.calcHist counts in float32: exact up to 2**24 pixels per image
_CALCHIST_MAX_PIXELS = 1 << 24

#: pixels per chunk of the accumulation: the gathered values and the index
#: copy numpy makes stay in the CPU cache between gather and add (2x faster
#: than whole images, measured by benchmarks/corilla.py)
_CHUNK = 1 << 17


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


def _histogram(image: np.ndarray, levels: int) -> np.ndarray:
    """Counts of each intensity, shape (levels,), int64 (exact)."""
    if image.size < _CALCHIST_MAX_PIXELS:
        # one pass, no int64 copy of the image (np.bincount makes one): ~6x faster
        counts = cv2.calcHist([np.ascontiguousarray(image)], [0], None, [levels], [0, levels])
        return counts.ravel().astype(np.int64)
    return np.bincount(image.ravel(), minlength=levels).astype(np.int64)


class IlluminationStats:
    """Mergeable statistics of a set of same-sized images of one channel.

    Parameters
    ----------
    n : int
        Number of images added.
    log_sum : ndarray, shape (M, N), dtype uint64
        Per-pixel sum of ``round(log10(x) * 2**LOG_BITS)`` (``log10(0) := 0``).
    sq_sum : ndarray, shape (M, N), dtype uint64
        Per-pixel sum of ``round((log10(x) - centre)**2 * 2**SQ_BITS)``, where
        ``centre`` is half the log10 of the dtype's maximum.
    histogram : ndarray, shape (2**bits,), dtype int64
        Counts of raw intensities over all pixels of all images; its size
        says the dtype (256: uint8, 65536: uint16).

    Notes
    -----
    The arrays are taken over, not copied (unless they need conversion).
    Images added with :meth:`add` are first summed in a uint64 block whose
    32-bit halves hold the two sums of up to :data:`BLOCK_IMAGES` images;
    every public read (:attr:`log_sum`, :meth:`merge`, :attr:`mean`, ...)
    folds the block into the totals first.
    """

    def __init__(
        self, n: int, log_sum: np.ndarray, sq_sum: np.ndarray, histogram: np.ndarray
    ) -> None:
        if histogram.size not in (1 << 8, 1 << 16):
            raise ValueError(f"histogram must have 256 or 65536 bins, got {histogram.size}")
        if log_sum.shape != sq_sum.shape:
            raise ValueError(f"sums of different shapes {log_sum.shape} and {sq_sum.shape}")
        self.n = int(n)
        # contiguous, so that flat views of them can be added to in place
        self._log_sum = np.ascontiguousarray(log_sum, dtype=np.uint64)
        self._sq_sum = np.ascontiguousarray(sq_sum, dtype=np.uint64)
        self.histogram = np.asarray(histogram, dtype=np.int64)
        # block accumulator (flat) and a chunk-sized buffer, allocated on first use
        self._block: np.ndarray | None = None
        self._buffer: np.ndarray | None = None
        self._block_n = 0

    @classmethod
    def empty(cls, shape: tuple[int, int], dtype: np.dtype | type = np.uint16) -> IlluminationStats:
        """Statistics of no images.

        Parameters
        ----------
        shape : tuple of int
            (M, N) of the images to come.
        dtype : numpy dtype
            uint8 or uint16.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.uint8, np.uint16):
            raise ValueError(f"illumination statistics need uint8 or uint16 images, got {dtype}")
        levels = 1 << (8 * dtype.itemsize)
        return cls(
            0,
            np.zeros(shape, np.uint64),
            np.zeros(shape, np.uint64),
            np.zeros(levels, np.int64),
        )

    # ------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, int]:
        return self._log_sum.shape

    @property
    def dtype(self) -> np.dtype:
        """dtype of the images: uint8 or uint16."""
        return np.dtype(np.uint8 if self.histogram.size == 1 << 8 else np.uint16)

    @property
    def bits(self) -> int:
        return 8 * self.dtype.itemsize

    @property
    def centre(self) -> float:
        """The constant the squared deviations are taken from (log10 units)."""
        return _centre(self.histogram.size)

    @property
    def log_sum(self) -> np.ndarray:
        """Per-pixel fixed-point sum of log10 values, shape (M, N), uint64."""
        self._fold()
        return self._log_sum

    @property
    def sq_sum(self) -> np.ndarray:
        """Per-pixel fixed-point sum of squared deviations, shape (M, N), uint64."""
        self._fold()
        return self._sq_sum

    # ------------------------------------------------------------- building

    def add(self, image: np.ndarray) -> None:
        """Add one image.

        Parameters
        ----------
        image : ndarray, shape (M, N), dtype uint8 or uint16
            Same shape and dtype as the statistics.

        Raises
        ------
        ValueError
            For another shape or dtype.
        """
        if image.shape != self.shape:
            raise ValueError(f"image of shape {image.shape}, expected {self.shape}")
        if image.dtype != self.dtype:
            raise ValueError(f"image of dtype {image.dtype}, expected {self.dtype}")
        table = _PACKED[self.bits]
        if self._block is None:
            self._block = np.empty(image.size, np.uint64)
            self._buffer = np.empty(min(_CHUNK, image.size), np.uint64)
        pixels = np.ascontiguousarray(image).reshape(-1)
        # one gather gives both numbers; take() into kept buffers avoids allocating
        # 8 bytes per pixel per image, and mode="wrap" skips its slow bounds check
        # (indices of a uint8/uint16 image are always within the table)
        for start in range(0, pixels.size, _CHUNK):
            stop = start + _CHUNK
            block = self._block[start:stop]
            if self._block_n == 0:
                np.take(table, pixels[start:stop], out=block, mode="wrap")
            else:
                values = self._buffer[: block.size]
                np.take(table, pixels[start:stop], out=values, mode="wrap")
                np.add(block, values, out=block)
        self._block_n += 1
        self.histogram += _histogram(image, self.histogram.size)
        self.n += 1
        if self._block_n == BLOCK_IMAGES:
            self._fold()

    def _fold(self) -> None:
        """Add the block's two 32-bit halves to the uint64 totals and empty it."""
        if self._block_n == 0:
            return
        assert self._block is not None and self._buffer is not None
        log_sum, sq_sum = self._log_sum.reshape(-1), self._sq_sum.reshape(-1)
        for start in range(0, self._block.size, _CHUNK):
            stop = start + _CHUNK
            block = self._block[start:stop]
            low = self._buffer[: block.size]
            np.bitwise_and(block, np.uint64(0xFFFFFFFF), out=low)
            np.add(log_sum[start:stop], low, out=log_sum[start:stop])
            np.right_shift(block, np.uint64(32), out=block)
            np.add(sq_sum[start:stop], block, out=sq_sum[start:stop])
        self._block_n = 0

    def merge(self, other: IlluminationStats) -> IlluminationStats:
        """Statistics of both sets of images (exact: integer sums).

        Raises
        ------
        ValueError
            When the images differ in shape or dtype.
        """
        self._check_mergeable(other)
        return IlluminationStats(
            self.n + other.n,
            self.log_sum + other.log_sum,
            self.sq_sum + other.sq_sum,
            self.histogram + other.histogram,
        )

    def _check_mergeable(self, other: IlluminationStats) -> None:
        if other.shape != self.shape or other.histogram.size != self.histogram.size:
            raise ValueError(
                f"cannot merge statistics of {self.dtype} images of shape {self.shape} with "
                f"those of {other.dtype} images of shape {other.shape}"
            )

    def update(self, other: IlluminationStats) -> None:
        """Add the statistics of `other` to these, in place (exact, like :meth:`merge`,
        without allocating new sums: what collect does for each partial).

        Raises
        ------
        ValueError
            When the images differ in shape or dtype.
        """
        self._check_mergeable(other)
        self._fold()
        np.add(self._log_sum, other.log_sum, out=self._log_sum)
        np.add(self._sq_sum, other.sq_sum, out=self._sq_sum)
        self.histogram += other.histogram
        self.n += other.n

    # --------------------------------------------------------------- results

    @property
    def mean(self) -> np.ndarray:
        """Per-pixel mean of log10 intensities, shape (M, N), float64 (0 without images)."""
        return self.log_sum.astype(np.float64) / (2.0**LOG_BITS * max(self.n, 1))

    @property
    def std(self) -> np.ndarray:
        """Per-pixel sample std of log10 intensities (n - 1 in the denominator), float64.

        Zeros for fewer than 2 images.
        """
        n = self.n
        if n < 2:
            return np.zeros(self.shape, np.float64)
        # deviations from the centre: their sums are small, so little cancels
        dev_sum = self.log_sum.astype(np.float64) / 2.0**LOG_BITS - n * self.centre
        variance = self.sq_sum.astype(np.float64) / 2.0**SQ_BITS - dev_sum * dev_sum / n
        variance /= n - 1
        return np.sqrt(np.maximum(variance, 0.0))

    def percentiles(self, levels: np.ndarray = PERCENTILE_LEVELS) -> dict[float, float]:
        """Intensity at each percentile level of all pixels pooled (lower value at ties).

        Parameters
        ----------
        levels : ndarray of float
            Percentile levels in [0, 100].

        Returns
        -------
        dict of float to float
            Level to intensity (``method="inverted_cdf"`` of numpy); 0 without images.
        """
        cumulative = np.cumsum(self.histogram)
        count = cumulative[-1]
        if count == 0:
            return {float(level): 0.0 for level in levels}
        ranks = np.ceil(np.asarray(levels) / 100.0 * count).clip(1, count)
        values = np.searchsorted(cumulative, ranks, side="left")
        return {float(level): float(v) for level, v in zip(levels, values, strict=True)}

    # ------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics to an HDF5 file atomically (temp file + rename)."""
        storage.write_datasets(
            path,
            {
                "n": np.asarray(self.n, dtype=np.int64),
                "log_sum": self.log_sum,
                "sq_sum": self.sq_sum,
                "histogram": self.histogram,
                "fixed_point_bits": np.array([LOG_BITS, SQ_BITS], dtype=np.int64),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> IlluminationStats:
        """Read statistics written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            When the file does not exist.
        ValueError
            When it was written with other fixed-point constants.
        """
        bits = storage.read_dataset(path, "fixed_point_bits")
        if list(bits) != [LOG_BITS, SQ_BITS]:
            raise ValueError(
                f"{path} holds statistics with fixed-point bits {list(bits)}, "
                f"this version uses {[LOG_BITS, SQ_BITS]}"
            )
        return cls(
            int(storage.read_dataset(path, "n")),
            storage.read_dataset(path, "log_sum"),
            storage.read_dataset(path, "sq_sum"),
            storage.read_dataset(path, "histogram"),
        )


# ---------------------------------------------------------------- correction


def smooth(image: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Gaussian-smoothed copy of a statistics image.

    Same result as ``scipy.ndimage.gaussian_filter(image, sigma, mode="reflect",
    truncate=4.0)`` up to rounding, several times faster (OpenCV).

    Parameters
    ----------
    image : ndarray, shape (M, N), dtype float64
    sigma : float
        Standard deviation of the kernel in pixels; 0 returns a copy.

    Returns
    -------
    ndarray, shape (M, N), dtype float64
    """
    image = np.asarray(image, dtype=np.float64)
    if sigma <= 0:
        return image.copy()
    radius = int(4.0 * sigma + 0.5)  # scipy's kernel radius for truncate=4
    ksize = 2 * radius + 1
    return cv2.GaussianBlur(
        image, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT
    )


def _correction_log_table(levels: int) -> np.ndarray:
    """log10 per intensity as :func:`correct` computes it (0 -> log10(1e-10))."""
    table = np.log10(np.maximum(np.arange(levels), 1e-10).astype(np.float64))
    return table


_LOG10_CORRECTION = {8: _correction_log_table(1 << 8), 16: _correction_log_table(1 << 16)}
#: pixels per chunk of Correction (float64 temporaries of 256 kB)
_CORRECTION_CHUNK = 1 << 15


def correct(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Correct an image for uneven illumination (the reference formula, §5.4).

    Parameters
    ----------
    image : ndarray, shape (M, N), dtype uint8 or uint16
    mean, std : ndarray, shape (M, N), dtype float64
        The channel's statistics of log10 intensities (usually smoothed).

    Returns
    -------
    ndarray, shape (M, N), same dtype as `image`
        Rounded and clipped to the dtype's range.

    See Also
    --------
    Correction : the same result, about three times faster, for many images.
    """
    logs = np.log10(np.maximum(image, 1e-10).astype(np.float64))
    safe_std = np.where(std > 0, std, 1.0)
    logs = (logs - mean) / safe_std * std.mean() + mean.mean()
    info = np.iinfo(image.dtype)
    return np.clip(np.round(10.0**logs), info.min, info.max).astype(image.dtype)


class Correction:
    """Illumination correction of one channel, prepared once for many images.

    ``Correction(mean, std)(image)`` equals ``correct(image, mean, std)``
    (bit for bit, except where a reference value lies within ~1e-10 of a
    half-integer, where float64 rounding of the two formulas may differ by
    one grey level): the per-pixel formula
    ``10 ** ((log10(x) - mean) / std * mean(std) + mean(mean))`` is rewritten as
    ``exp(log10(x) * a + b)`` with ``a = ln(10) * mean(std) / std`` and
    ``b = ln(10) * (mean(mean) - mean * mean(std) / std)`` computed here, and
    log10 is read from a table.

    Parameters
    ----------
    mean, std : ndarray, shape (M, N), dtype float64
        The channel's statistics of log10 intensities, usually smoothed
        (:meth:`tmlib.models.IllumstatsImages.smoothed`).

    Examples
    --------
    >>> stats = channel.illumstats_file.get().smoothed()  # doctest: +SKIP
    >>> corrected = Correction.from_stats(stats)(image)  # doctest: +SKIP
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.shape != std.shape or mean.ndim != 2:
            raise ValueError(f"mean {mean.shape} and std {std.shape} must be 2D of one shape")
        safe_std = np.where(std > 0, std, 1.0)
        scale = std.mean() / safe_std
        ln10 = np.log(10.0)
        self.shape: tuple[int, int] = mean.shape
        # flat, for the chunks of __call__
        self._a = (scale * ln10).reshape(-1)
        self._b = ((mean.mean() - mean * scale) * ln10).reshape(-1)

    @classmethod
    def from_stats(cls, stats: object) -> Correction:
        """From anything with ``mean`` and ``std`` arrays (e.g. :class:`IllumstatsImages`)."""
        return cls(stats.mean, stats.std)  # type: ignore[attr-defined]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Correct one image.

        Parameters
        ----------
        image : ndarray, shape (M, N), dtype uint8 or uint16

        Returns
        -------
        ndarray, shape (M, N), same dtype as `image`
        """
        if image.shape != self.shape:
            raise ValueError(f"image of shape {image.shape}, statistics of shape {self.shape}")
        bits = image.dtype.itemsize * 8
        if image.dtype.kind != "u" or bits not in _LOG10_CORRECTION:
            raise ValueError(f"image of dtype {image.dtype}, expected uint8 or uint16")
        table = _LOG10_CORRECTION[bits]
        top = float(np.iinfo(image.dtype).max)
        pixels = np.ascontiguousarray(image).reshape(-1)
        out = np.empty(pixels.size, image.dtype)
        buffer = np.empty(min(_CORRECTION_CHUNK, pixels.size), np.float64)
        # chunk by chunk: the float64 temporaries stay in the CPU cache
        for start in range(0, pixels.size, _CORRECTION_CHUNK):
            stop = start + _CORRECTION_CHUNK
            logs = buffer[: min(_CORRECTION_CHUNK, pixels.size - start)]
            np.take(table, pixels[start:stop], out=logs, mode="wrap")
            np.multiply(logs, self._a[start:stop], out=logs)
            np.add(logs, self._b[start:stop], out=logs)
            cv2.exp(logs, logs)  # SIMD exp, several times faster than numpy's power
            np.rint(logs, out=logs)
            np.clip(logs, 0.0, top, out=logs)
            out[start:stop] = logs
        return out.reshape(image.shape)
