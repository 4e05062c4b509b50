"""Threshold an image with a threshold that varies over the image.

Each pixel is compared with a threshold computed from its neighbourhood, a
``kernel_size`` x ``kernel_size`` window, so that objects are found on an
uneven background:

``niblack``
    Niblack's method: local mean minus ``constant`` times the local standard
    deviation (box window).
``crosscorr``
    The cross-correlation of the image with a normalised Gaussian window of
    width ``kernel_size`` (a Gaussian-weighted local mean) minus
    ``constant`` (an offset in intensity units).

The local threshold is then clipped to ``[min_threshold, max_threshold]``:
pixels below ``min_threshold`` are always background (this keeps background
noise far from objects out of the mask) and pixels above ``max_threshold``
always foreground (this keeps the insides of large bright objects).
"""

from __future__ import annotations

import collections
import numbers

import cv2
import numpy as np

from jtmodules._plots import image_figure
from jtmodules._shapes import intensity_image

VERSION = "0.2.0"

Output = collections.namedtuple("Output", ["mask", "figure"])

#: the local threshold methods
METHODS = ("niblack", "crosscorr")


def _number(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def local_threshold(image: np.ndarray, method: str, kernel_size: int, constant: float):
    """The per-pixel threshold of `method` (float32 array shaped like `image`)."""
    values = image.astype(np.float32)
    size = (kernel_size, kernel_size)
    border = cv2.BORDER_REFLECT
    if method == "niblack":
        mean = cv2.boxFilter(values, -1, size, borderType=border)
        if constant == 0:
            return mean
        # E[(x - c)^2] with c the global mean keeps float32 precise for uint16 data
        centred = values - np.float32(values.mean())
        mean_sq = cv2.boxFilter(centred * centred, -1, size, borderType=border)
        variance = mean_sq - (mean - np.float32(values.mean())) ** 2
        std = np.sqrt(np.maximum(variance, 0, out=variance))
        return mean - np.float32(constant) * std
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    weighted = cv2.GaussianBlur(values, size, sigma, borderType=border)
    return weighted - np.float32(constant)


def main(
    image,
    method="niblack",
    kernel_size=111,
    constant=0,
    min_threshold=None,
    max_threshold=None,
    plot=False,
):
    """Foreground mask of `image` by a locally adaptive threshold.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Grey-scale image of shape (M, N).
    method : str, optional
        ``"niblack"`` or ``"crosscorr"``.
    kernel_size : int, optional
        Width of the neighbourhood in pixels (odd, at least 3); should be
        larger than the objects.
    constant : float, optional
        ``niblack``: weight of the local standard deviation subtracted from the
        local mean; ``crosscorr``: offset subtracted from the weighted mean.
        Positive values lower the threshold.
    min_threshold : float, optional
        Lowest threshold allowed (no lower bound when None).
    max_threshold : float, optional
        Highest threshold allowed (no upper bound when None).
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``mask``: numpy.ndarray[numpy.bool_] of shape (M, N), true where
        `image` is above its local threshold; ``figure``: Plotly JSON string,
        or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `image` is not a 2D intensity image, `method` is unknown,
        `kernel_size` is not an odd integer >= 3 or a threshold argument is
        not a number.
    """
    image = intensity_image(image, "image")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, numbers.Real)
        or not float(kernel_size).is_integer()
        or kernel_size < 3
        or int(kernel_size) % 2 == 0
    ):
        raise ValueError(f"kernel_size must be an odd integer of at least 3, got {kernel_size!r}")
    constant = _number(constant, "constant")
    lower = _number(min_threshold, "min_threshold", allow_none=True)
    upper = _number(max_threshold, "max_threshold", allow_none=True)
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"min_threshold {lower} is larger than max_threshold {upper}")

    threshold = local_threshold(image, method, int(kernel_size), constant)
    if lower is not None or upper is not None:
        np.clip(threshold, lower, upper, out=threshold)
    mask = image > threshold

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("image", image, "intensity"),
                ("local threshold", threshold, "intensity"),
                ("mask", mask, "mask"),
            ]
        )
    return Output(mask, figure)
