"""Grow or shrink the objects of a label image by a number of pixels.

``n > 0``: every object grows by up to ``n`` pixels (Euclidean distance) into
the background; a background pixel goes to the nearest object, so objects
never merge or overlap (growth stops where two objects meet).
``n < 0``: every object loses the pixels within ``|n|`` pixels of its outline,
i.e. of the background or of another object (objects touching the image
border are not eroded from the border); objects thinner than that vanish.
Labels are kept.
"""

from __future__ import annotations

import collections
import numbers

import numpy as np
from scipy import ndimage
from skimage.segmentation import expand_labels, find_boundaries

from jtmodules._plots import image_figure
from jtmodules._shapes import label_image

VERSION = "0.1.1"

Output = collections.namedtuple("Output", ["expanded_image", "figure"])


def shrink_labels(labels: np.ndarray, distance: float) -> np.ndarray:
    """`labels` without the pixels closer than `distance` to their object's outline."""
    # Outline pixels (4-connected) of every object; a pixel's distance to its
    # own outline is also its distance to any other object's outline, up to a pixel.
    outline = find_boundaries(labels, connectivity=1, mode="inner")
    depth = ndimage.distance_transform_edt(~outline)
    return np.where(depth > distance - 1, labels, 0).astype(np.int32)


def main(image, n, plot=False):
    """Grow (`n` > 0) or shrink (`n` < 0) the objects of `image` by `n` pixels.

    Parameters
    ----------
    image : numpy.ndarray[numpy.int32]
        Label image of shape (M, N), 0 is background.
    n : int
        Number of pixels to grow the objects by (negative: shrink).
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``expanded_image``: numpy.ndarray[numpy.int32] of shape (M, N);
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `image` is not a 2D label image or `n` is not an integer.
    """
    labels = label_image(image, "image")
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not float(n).is_integer():
        raise ValueError(f"n must be an integer, got {n!r}")
    n = int(n)
    if n > 0:
        expanded_image = expand_labels(labels, distance=n).astype(np.int32, copy=False)
    elif n < 0:
        expanded_image = shrink_labels(labels, -n)
    else:
        expanded_image = labels.copy()

    figure = ""
    if plot:
        title = f"expanded by {n}" if n >= 0 else f"shrunk by {-n}"
        figure = image_figure([("objects", labels, "label"), (title, expanded_image, "label")])
    return Output(expanded_image, figure)
