"""Smooth an image with a low-pass filter.

``average`` (box filter), ``gaussian`` and ``median`` use a square window of
``filter_size`` pixels (the Gaussian's standard deviation follows from the
window size as in OpenCV: ``0.3 * ((filter_size - 1) / 2 - 1) + 0.8``).
``bilateral`` averages over a ``filter_size`` neighbourhood but only across
similar intensities (edge preserving): pixels whose difference is large
compared with the image's standard deviation hardly mix. The smoothed image
keeps the dtype of the input.

Speed: all filters take milliseconds on a 2160 x 2560 image, except medians
wider than 5 pixels of 16-bit images (no OpenCV fast path), which take
seconds.
"""

from __future__ import annotations

import collections

import cv2
import mahotas
import numpy as np

from jtmodules._plots import image_figure
from jtmodules._shapes import intensity_image

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["smoothed_image", "figure"])

#: the filters
FILTERS = ("average", "gaussian", "median", "bilateral")

#: dtypes OpenCV filters directly; others are filtered as float32
_CV_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def _back(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if result.dtype == dtype:
        return result
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(dtype)
    return result.astype(dtype)


def main(image, filter_name="gaussian", filter_size=5, plot=False):
    """Low-pass filter `image`.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Grey-scale image of shape (M, N).
    filter_name : str, optional
        ``"average"``, ``"gaussian"``, ``"median"`` or ``"bilateral"``.
    filter_size : int, optional
        Width of the (square) filter window in pixels; odd, at least 1 (1
        leaves the image unchanged).
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``smoothed_image``: numpy.ndarray of shape (M, N) and the dtype of
        `image`; ``figure``: Plotly JSON string, or ``""`` when `plot` is
        false.

    Raises
    ------
    ValueError
        If `image` is not a 2D intensity image, `filter_name` is unknown or
        `filter_size` is not an odd positive integer.
    """
    image = intensity_image(image, "image")
    if filter_name not in FILTERS:
        raise ValueError(f"filter_name must be one of {', '.join(FILTERS)}, got {filter_name!r}")
    if (
        isinstance(filter_size, bool)
        or not float(filter_size).is_integer()
        or filter_size < 1
        or int(filter_size) % 2 == 0
    ):
        raise ValueError(f"filter_size must be an odd positive integer, got {filter_size!r}")
    size = int(filter_size)

    work = image if image.dtype in _CV_DTYPES else image.astype(np.float32)
    if size == 1:
        smoothed = work.copy()
    elif filter_name == "average":
        smoothed = cv2.blur(work, (size, size), borderType=cv2.BORDER_REFLECT)
    elif filter_name == "gaussian":
        smoothed = cv2.GaussianBlur(work, (size, size), 0, borderType=cv2.BORDER_REFLECT)
    elif filter_name == "median":
        if work.dtype == np.uint8 or (size <= 5 and work.dtype in (np.uint16, np.float32)):
            smoothed = cv2.medianBlur(work, size)
        else:
            smoothed = mahotas.median_filter(work, np.ones((size, size), bool), mode="reflect")
    else:
        values = work.astype(np.float32)
        sigma_color = float(values.std()) or 1.0
        smoothed = cv2.bilateralFilter(
            values, size, sigma_color, size / 2.0, borderType=cv2.BORDER_REFLECT
        )
    smoothed_image = _back(smoothed, image.dtype)

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("image", image, "intensity"),
                (f"{filter_name} smoothed", smoothed_image, "intensity"),
            ]
        )
    return Output(smoothed_image, figure)
