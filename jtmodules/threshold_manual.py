"""Threshold an image at a fixed intensity.

Pixels brighter than ``threshold`` become foreground (``True``).
"""

from __future__ import annotations

import collections
import numbers

from jtmodules._plots import image_figure
from jtmodules._shapes import intensity_image

VERSION = "0.0.1"

Output = collections.namedtuple("Output", ["mask", "figure"])


def main(image, threshold, plot=False):
    """Foreground mask of the pixels of `image` above `threshold`.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Grey-scale image of shape (M, N).
    threshold : int or float
        Intensity; pixels with a value strictly greater are foreground.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``mask``: numpy.ndarray[numpy.bool_] of shape (M, N); ``figure``:
        Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `image` is not a 2D intensity image or `threshold` is not a number.
    """
    image = intensity_image(image, "image")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    mask = image > threshold

    figure = ""
    if plot:
        figure = image_figure([("image", image, "intensity"), (f"> {threshold}", mask, "mask")])
    return Output(mask, figure)
