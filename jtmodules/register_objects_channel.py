"""Register a label image that comes in as a channel as an object type.

For label images that enter the pipeline as intensity images (e.g. a uint16
label image of a segmentation made elsewhere, uploaded as a channel; switch
off illumination correction, ``correct: false``, for such a channel). Each
pixel value is an object label (0 is background); the values are cast to int32
unchanged. The module makes no figure.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules import _shapes

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["objects"])


def main(mask, plot=False):
    """Register the labels of the channel image `mask` as segmented objects.

    Parameters
    ----------
    mask : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Label image of shape (M, N) typed as an intensity image; 0 is
        background.
    plot : bool, optional
        Accepted for the uniform module interface; the module makes no figure.

    Returns
    -------
    Output
        ``objects``: numpy.ndarray[numpy.int32] of shape (M, N) with the same
        values as `mask`.

    Raises
    ------
    ValueError
        If `mask` is not a 2D integer array or has values outside 0 to
        2**31 - 1.
    """
    if np.asarray(mask).dtype == np.bool_:
        raise ValueError(
            "mask must be a label image stored as integers (uint8 or uint16), got bool"
        )
    return Output(_shapes.label_image(mask, "mask").astype(np.int32))
