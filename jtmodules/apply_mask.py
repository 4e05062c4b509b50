"""Set the pixels of an image outside a mask to zero.

The mask may be a binary image (``True`` inside) or a label image (any
non-zero label is inside). The masked image keeps the dtype of the input, so an
intensity image stays an intensity image and a label image keeps its labels.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules._plots import image_figure

VERSION = "0.2.0"

Output = collections.namedtuple("Output", ["masked_image", "figure"])

#: what the figure shows the masked image as
PLOT_TYPES = ("objects", "intensity")


def main(image, mask, plot_type="objects", plot=False):
    """Zero the pixels of `image` where `mask` is zero (``False``).

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16 | numpy.int32 | numpy.bool_]
        Image of shape (M, N) to be masked: an intensity image or a label image.
    mask : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary or label image of shape (M, N); non-zero pixels are kept.
    plot_type : str, optional
        How the figure shows the masked image: ``"objects"`` (colour map for
        labels) or ``"intensity"`` (grey values).
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``masked_image``: numpy.ndarray of shape (M, N) and the dtype of
        `image`, equal to `image` where `mask` is non-zero and 0 elsewhere;
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `image` or `mask` is not a 2D array of a supported dtype, their
        shapes differ, or `plot_type` is unknown.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 2:
        raise ValueError(f"image must be a 2D array, got {image.ndim} dimensions")
    if not (image.dtype == np.bool_ or np.issubdtype(image.dtype, np.integer)):
        raise ValueError(f"image must have an integer or bool dtype, got {image.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2D array, got {mask.ndim} dimensions")
    if not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)):
        raise ValueError(f"mask must be a bool or label (integer) image, got {mask.dtype}")
    if mask.shape != image.shape:
        raise ValueError(f"mask has shape {mask.shape} but image has shape {image.shape}")
    if plot_type not in PLOT_TYPES:
        raise ValueError(f"plot_type must be one of {', '.join(PLOT_TYPES)}, got {plot_type!r}")

    masked_image = np.where(mask != 0, image, np.zeros((), image.dtype))

    figure = ""
    if plot:
        kind = "label" if plot_type == "objects" else "intensity"
        figure = image_figure([("image", image, "intensity"), ("masked image", masked_image, kind)])
    return Output(masked_image, figure)
