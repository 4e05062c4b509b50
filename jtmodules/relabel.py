"""Give the objects of a label image consecutive labels.

After objects were removed (e.g. by ``filter``) labels have gaps; this maps
the labels present, in increasing order, to 1, 2, ..., n.
"""

from __future__ import annotations

import collections

import numpy as np
from skimage.segmentation import relabel_sequential

from jtmodules._plots import image_figure
from jtmodules._shapes import label_image as check_label_image

VERSION = "0.0.1"

Output = collections.namedtuple("Output", ["relabeled_image", "figure"])


def main(label_image, plot=False):
    """`label_image` with labels 1..n, keeping the order of the labels.

    Parameters
    ----------
    label_image : numpy.ndarray[numpy.int32]
        Label image of shape (M, N), 0 is background.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``relabeled_image``: numpy.ndarray[numpy.int32] of shape (M, N);
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `label_image` is not a 2D integer array with non-negative labels.
    """
    labels = check_label_image(label_image, "label_image")
    relabeled_image = relabel_sequential(labels)[0].astype(np.int32, copy=False)

    figure = ""
    if plot:
        figure = image_figure(
            [("labels", labels, "label"), ("relabeled", relabeled_image, "label")]
        )
    return Output(relabeled_image, figure)
