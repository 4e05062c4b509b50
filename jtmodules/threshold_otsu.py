"""Threshold an image at Otsu's threshold.

Otsu's method picks the intensity that best separates the histogram into two
classes (largest between-class variance). The threshold is multiplied by
``correction_factor`` (below 1 takes in more dim pixels, above 1 fewer) and
then clipped to ``[min_threshold, max_threshold]``, which keeps images
without objects (where Otsu splits the background noise) from being
segmented into noise. Pixels above the final threshold are foreground.
"""

from __future__ import annotations

import collections
import numbers

from skimage.filters import threshold_otsu

from jtmodules._plots import image_figure
from jtmodules._shapes import intensity_image

VERSION = "0.0.2"

Output = collections.namedtuple("Output", ["mask", "figure"])


def _number_or_none(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number or None, got {value!r}")
    return float(value)


def main(image, correction_factor=1, min_threshold=None, max_threshold=None, plot=False):
    """Foreground mask of `image` by a corrected and clipped Otsu threshold.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Grey-scale image of shape (M, N).
    correction_factor : float, optional
        Factor applied to Otsu's threshold.
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
        `image` is above the threshold; ``figure``: Plotly JSON string, or
        ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `image` is not a 2D intensity image, a threshold argument is not a
        number or `min_threshold` exceeds `max_threshold`.
    """
    image = intensity_image(image, "image")
    factor = _number_or_none(correction_factor, "correction_factor")
    if factor is None or factor <= 0:
        raise ValueError(f"correction_factor must be a positive number, got {correction_factor!r}")
    lower = _number_or_none(min_threshold, "min_threshold")
    upper = _number_or_none(max_threshold, "max_threshold")
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"min_threshold {lower} is larger than max_threshold {upper}")

    if image.size and image.min() != image.max():
        threshold = float(threshold_otsu(image)) * factor
    else:  # a flat image has no two classes: everything is background
        threshold = float(image.max()) if image.size else 0.0
    if lower is not None:
        threshold = max(threshold, lower)
    if upper is not None:
        threshold = min(threshold, upper)
    mask = image > threshold

    figure = ""
    if plot:
        figure = image_figure([("image", image, "intensity"), (f"> {threshold:.6g}", mask, "mask")])
    return Output(mask, figure)
