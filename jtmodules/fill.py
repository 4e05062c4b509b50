"""Fill holes in a mask.

A hole is a background region that does not touch the image border and is
enclosed by foreground. Background pixels are connected through their edges
only, so an outline whose pixels touch at corners (8-connected) seals a hole.
"""

from __future__ import annotations

import collections

from scipy import ndimage

from jtmodules._plots import image_figure
from jtmodules._shapes import binary_image

VERSION = "0.0.1"

Output = collections.namedtuple("Output", ["filled_mask", "figure"])


def main(mask, plot=False):
    """`mask` with its holes filled.

    Parameters
    ----------
    mask : numpy.ndarray[numpy.bool_]
        Binary image of shape (M, N) (a label image is taken as its non-zero
        pixels).
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``filled_mask``: numpy.ndarray[numpy.bool_] of shape (M, N);
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `mask` is not a 2D bool or integer array.
    """
    mask = binary_image(mask, "mask")
    filled_mask = ndimage.binary_fill_holes(mask)

    figure = ""
    if plot:
        figure = image_figure([("mask", mask, "mask"), ("filled mask", filled_mask, "mask")])
    return Output(filled_mask, figure)
