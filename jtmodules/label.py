"""Label the connected components of a mask.

Each connected group of foreground pixels becomes one object with its own
label 1, 2, ... (in raster order of the objects' first pixels). With
``connectivity`` 8 pixels touching at a corner are connected, with 4 only
pixels sharing an edge.
"""

from __future__ import annotations

import collections

import numpy as np
from scipy import ndimage

from jtmodules._plots import image_figure
from jtmodules._shapes import binary_image

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["label_image", "figure"])

#: allowed connectivities
CONNECTIVITIES = (4, 8)


def main(mask, connectivity=8, plot=False):
    """Label image of the connected components of `mask`.

    Parameters
    ----------
    mask : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary or label image of shape (M, N); non-zero pixels are foreground
        (labels of a label image are ignored: touching objects merge).
    connectivity : int, optional
        4 or 8.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``label_image``: numpy.ndarray[numpy.int32] of shape (M, N) with
        labels 1..n and 0 as background; ``figure``: Plotly JSON string, or
        ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `mask` is not a 2D bool or integer array or `connectivity` is not 4
        or 8.
    """
    mask = binary_image(mask, "mask")
    if isinstance(connectivity, bool) or connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    label_image = np.zeros(mask.shape, np.int32)
    ndimage.label(mask, structure=structure, output=label_image)

    figure = ""
    if plot:
        figure = image_figure([("mask", mask, "mask"), ("labels", label_image, "label")])
    return Output(label_image, figure)
