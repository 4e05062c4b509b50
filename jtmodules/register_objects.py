"""Register a mask as an object type (segmented objects).

Objects registered here get measured by the ``measure_*`` modules and, when
listed in the pipeline's ``output.objects``, stored with their outlines. A
label image keeps its labels (cast to int32); a binary image is first labelled
into connected components with 8-connectivity (mahotas). The module makes no
figure: it only hands the objects on.
"""

from __future__ import annotations

import collections

import mahotas as mh
import numpy as np

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["objects"])

#: 8-connectivity of the labelling of binary masks
_EIGHT = np.ones((3, 3), dtype=bool)


def main(mask, plot=False):
    """Register `mask` as segmented objects.

    Parameters
    ----------
    mask : numpy.ndarray[numpy.int32 | numpy.bool_]
        Label image of shape (M, N) (0 is background), or binary image of shape
        (M, N) whose 8-connected components become the objects.
    plot : bool, optional
        Accepted for the uniform module interface; the module makes no figure.

    Returns
    -------
    Output
        ``objects``: numpy.ndarray[numpy.int32] of shape (M, N), the label
        image of the objects.

    Raises
    ------
    ValueError
        If `mask` is not a 2D bool or integer array, or has labels outside
        0 to 2**31 - 1.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2D array, got {mask.ndim} dimensions")
    if mask.dtype == np.bool_:
        objects, _ = mh.label(mask, Bc=_EIGHT)
        return Output(objects.astype(np.int32, copy=False))
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must be a label (int32) or binary (bool) image, got {mask.dtype}")
    if mask.size and (mask.min() < 0 or mask.max() > np.iinfo(np.int32).max):
        raise ValueError(
            f"mask must have labels from 0 to {np.iinfo(np.int32).max}, "
            f"got {mask.min()} to {mask.max()}"
        )
    return Output(mask.astype(np.int32))
