"""Invert an image.

An intensity image becomes ``maximum of its dtype - value`` (for uint8
``255 - value``, for uint16 ``65535 - value``); a binary image becomes its
logical negation. Dark objects on a bright background (e.g. in bright-field
images) thereby become bright objects that thresholding modules can find.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules._plots import image_figure

VERSION = "0.0.1"

Output = collections.namedtuple("Output", ["inverted_image", "figure"])


def main(image, plot=False):
    """Invert `image`.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16 | numpy.bool_]
        Intensity image or binary image of shape (M, N).
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``inverted_image``: numpy.ndarray of shape (M, N) and the dtype of
        `image`; ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `image` is not a 2D unsigned integer or bool array.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be a 2D array, got {image.ndim} dimensions")
    if image.dtype == np.bool_:
        inverted_image = np.logical_not(image)
        kind = "mask"
    elif np.issubdtype(image.dtype, np.unsignedinteger):
        inverted_image = np.iinfo(image.dtype).max - image
        kind = "intensity"
    else:
        raise ValueError(
            "image must be an intensity image (uint8 or uint16) or a binary image, "
            f"got {image.dtype}"
        )

    figure = ""
    if plot:
        figure = image_figure([("image", image, kind), ("inverted image", inverted_image, kind)])
    return Output(inverted_image, figure)
