"""Use a label image that comes in as a channel as a label image.

For segmentations made outside TissueMAPS (e.g. by CellProfiler) and uploaded
as a channel: its integer pixel values (uint8 or uint16) are object labels, 0
is background. They are cast to int32 unchanged, so that the image can be
handed to modules that take a label image (switch off illumination correction,
``correct: false``, for such a channel). The module makes no figure.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules import _shapes

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["label_image"])


def main(input_image, plot=False):
    """Cast the channel image `input_image` to an int32 label image.

    Parameters
    ----------
    input_image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Label image of shape (M, N) typed as an intensity image; 0 is
        background.
    plot : bool, optional
        Accepted for the uniform module interface; the module makes no figure.

    Returns
    -------
    Output
        ``label_image``: numpy.ndarray[numpy.int32] of shape (M, N) with the
        same values as `input_image`.

    Raises
    ------
    ValueError
        If `input_image` is not a 2D integer array or has values outside 0 to
        2**31 - 1.
    """
    if np.asarray(input_image).dtype == np.bool_:
        raise ValueError(
            "input_image must be a label image stored as integers (uint8 or uint16), got bool"
        )
    return Output(_shapes.label_image(input_image, "input_image").astype(np.int32))
