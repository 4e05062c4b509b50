"""Linearly rescale intensities to the full range of the image's dtype.

Values at or below `min_value` become 0, values at or above `max_value` become
the maximum of the dtype (255 for uint8, 65535 for uint16), and values in
between are mapped linearly and rounded to the nearest integer::

    rescaled = round((value - min_value) / (max_value - min_value) * dtype_max)

Without `min_value` (`max_value`) the image's own minimum (maximum) is used,
which stretches the image's contrast to the full range.
"""

from __future__ import annotations

import collections
import numbers

import numpy as np

from jtmodules._plots import image_figure

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["rescaled_image", "figure"])


def _check_value(value, argument):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{argument} must be a finite number or None, got {value!r}")
    return float(value)


def main(intensity_image, min_value=None, max_value=None, plot=False):
    """Rescale `intensity_image` from [`min_value`, `max_value`] to [0, dtype maximum].

    Parameters
    ----------
    intensity_image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Intensity image of shape (M, N).
    min_value : float, optional
        Intensity that becomes 0 (and everything below it); default: the
        image's minimum.
    max_value : float, optional
        Intensity that becomes the dtype's maximum (and everything above it);
        default: the image's maximum.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``rescaled_image``: numpy.ndarray of shape (M, N) and the dtype of
        `intensity_image` (all zeros if the image is constant and no values
        are given); ``figure``: Plotly JSON string, or ``""`` when `plot` is
        false.

    Raises
    ------
    ValueError
        If `intensity_image` is not a 2D unsigned integer array, a value is not
        a finite number, or `min_value` is not below `max_value`.
    """
    image = np.asarray(intensity_image)
    if image.ndim != 2:
        raise ValueError(f"intensity_image must be a 2D array, got {image.ndim} dimensions")
    if not np.issubdtype(image.dtype, np.unsignedinteger):
        raise ValueError(
            f"intensity_image must be an intensity image (uint8 or uint16), got {image.dtype}"
        )
    lower = _check_value(min_value, "min_value")
    upper = _check_value(max_value, "max_value")
    if lower is not None and upper is not None and lower >= upper:
        raise ValueError(f"min_value ({min_value}) must be smaller than max_value ({max_value})")
    if lower is None:
        lower = float(image.min()) if image.size else 0.0
    if upper is None:
        upper = float(image.max()) if image.size else 0.0

    top = np.iinfo(image.dtype).max
    if upper <= lower:
        # only with a bound taken from the image: all pixels lie on one side of the range
        # (a constant image without given bounds has no contrast to stretch and becomes 0)
        fill = top if max_value is not None else 0
        rescaled_image = np.full_like(image, fill)
    else:
        fraction = (image.astype(np.float64) - lower) / (upper - lower)
        rescaled_image = np.rint(np.clip(fraction, 0.0, 1.0) * top).astype(image.dtype)

    figure = ""
    if plot:
        figure = image_figure(
            [("image", image, "intensity"), ("rescaled image", rescaled_image, "intensity")]
        )
    return Output(rescaled_image, figure)
