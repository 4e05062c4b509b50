"""Weighted sum of two intensity images.

``combined = weight_1 * image_1 + weight_2 * image_2``, computed in floating
point, rounded to the nearest integer and saturated to the range of the input
dtype (negative sums become 0, sums above the dtype's maximum become that
maximum), so the result has the dtype of the inputs.
"""

from __future__ import annotations

import collections
import numbers

import numpy as np

from jtmodules._plots import image_figure

VERSION = "0.0.2"

Output = collections.namedtuple("Output", ["combined_image", "figure"])


def _check_image(value, argument):
    value = np.asarray(value)
    if value.ndim != 2:
        raise ValueError(f"{argument} must be a 2D array, got {value.ndim} dimensions")
    if not np.issubdtype(value.dtype, np.unsignedinteger):
        raise ValueError(
            f"{argument} must be an intensity image (uint8 or uint16), got {value.dtype}"
        )
    return value


def _check_weight(value, argument):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{argument} must be a finite number, got {value!r}")
    return float(value)


def main(image_1, image_2, weight_1=1, weight_2=1, plot=False):
    """Add `image_1` and `image_2`, weighted by `weight_1` and `weight_2`.

    Parameters
    ----------
    image_1 : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Intensity image of shape (M, N).
    image_2 : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Intensity image of shape (M, N) and the dtype of `image_1`.
    weight_1 : float, optional
        Factor of `image_1`.
    weight_2 : float, optional
        Factor of `image_2`.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``combined_image``: numpy.ndarray of shape (M, N) and the dtype of the
        inputs, the rounded weighted sum clipped to the dtype's range;
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If an image is not a 2D unsigned integer array, the shapes or dtypes
        differ, or a weight is not a finite number.
    """
    image_1 = _check_image(image_1, "image_1")
    image_2 = _check_image(image_2, "image_2")
    if image_1.shape != image_2.shape:
        raise ValueError(f"image_2 has shape {image_2.shape} but image_1 has shape {image_1.shape}")
    if image_1.dtype != image_2.dtype:
        raise ValueError(f"image_2 has dtype {image_2.dtype} but image_1 has dtype {image_1.dtype}")
    weight_1 = _check_weight(weight_1, "weight_1")
    weight_2 = _check_weight(weight_2, "weight_2")

    total = weight_1 * image_1.astype(np.float64) + weight_2 * image_2.astype(np.float64)
    top = np.iinfo(image_1.dtype).max
    combined_image = np.clip(np.rint(total), 0, top).astype(image_1.dtype)

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("image 1", image_1, "intensity"),
                ("image 2", image_2, "intensity"),
                ("combined image", combined_image, "intensity"),
            ]
        )
    return Output(combined_image, figure)
