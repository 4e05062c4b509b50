"""Subtract a clipping mask from a mask.

Typical use: cytoplasm = cells minus nuclei. Pixels where the clipping mask is
non-zero are set to background (``0`` or ``False``); all other pixels keep
their value, so a label image keeps its labels (an object lying completely
inside the clipping mask disappears) and a binary image stays binary.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules._plots import image_figure

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["clipped_image", "figure"])


def _kind(image):
    return "mask" if image.dtype == np.bool_ else "label"


def _check_mask(value, argument):
    value = np.asarray(value)
    if value.ndim != 2:
        raise ValueError(f"{argument} must be a 2D array, got {value.ndim} dimensions")
    if not (value.dtype == np.bool_ or np.issubdtype(value.dtype, np.integer)):
        raise ValueError(f"{argument} must be a bool or label (integer) image, got {value.dtype}")
    return value


def main(image, clipping_mask, plot=False):
    """Remove the pixels of `clipping_mask` from `image`.

    Parameters
    ----------
    image : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary or label image of shape (M, N) that gets clipped.
    clipping_mask : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary or label image of shape (M, N); its non-zero pixels are removed
        from `image`.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``clipped_image``: numpy.ndarray of shape (M, N) and the dtype of
        `image`, equal to `image` where `clipping_mask` is zero and 0
        (``False``) elsewhere; ``figure``: Plotly JSON string, or ``""`` when
        `plot` is false.

    Raises
    ------
    ValueError
        If an argument is not a 2D bool or integer array or the shapes differ.
    """
    image = _check_mask(image, "image")
    clipping_mask = _check_mask(clipping_mask, "clipping_mask")
    if clipping_mask.shape != image.shape:
        raise ValueError(
            f"clipping_mask has shape {clipping_mask.shape} but image has shape {image.shape}"
        )

    clipped_image = np.where(clipping_mask != 0, np.zeros((), image.dtype), image)

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("image", image, _kind(image)),
                ("clipping mask", clipping_mask, _kind(clipping_mask)),
                ("clipped image", clipped_image, _kind(clipped_image)),
            ]
        )
    return Output(clipped_image, figure)
