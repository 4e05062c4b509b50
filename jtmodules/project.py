"""Project a z-stack onto one plane.

``max`` takes the brightest value of each pixel over the planes (maximum
intensity projection) and keeps the dtype of the stack. ``sum`` adds the
planes exactly, without overflow: the result gets the smallest unsigned integer
dtype that holds ``Z * maximum of the input dtype`` (a uint8 stack of up to 257
planes gives uint16, a uint16 stack of 2 to 65537 planes gives uint32). The
dtype therefore depends only on the dtype and the number of planes, never on
the pixel values, so every site of an experiment gets the same dtype. A stack
of a single plane (jterator passes it as an (M, N) image) is returned as it is.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules._plots import image_figure

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["projected_image", "figure"])

#: projection methods
METHODS = ("max", "sum")

_UNSIGNED = (np.uint8, np.uint16, np.uint32, np.uint64)


def sum_dtype(dtype, n_planes):
    """The dtype of the sum projection of `n_planes` planes of `dtype`.

    Parameters
    ----------
    dtype : numpy.dtype
        Unsigned integer dtype of the stack.
    n_planes : int
        Number of z-planes.

    Returns
    -------
    numpy.dtype
        Smallest unsigned integer dtype, at least as wide as `dtype`, whose
        maximum is at least ``n_planes * numpy.iinfo(dtype).max``.
    """
    need = max(int(n_planes), 1) * int(np.iinfo(dtype).max)
    for candidate in _UNSIGNED:
        if (
            np.dtype(candidate).itemsize >= np.dtype(dtype).itemsize
            and np.iinfo(candidate).max >= need
        ):
            return np.dtype(candidate)
    raise ValueError(f"the sum of {n_planes} planes of {dtype} does not fit in uint64")


def main(image, method="max", plot=False):
    """Project `image` along its last (z) axis with `method`.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Stack of shape (M, N, Z), or a single plane of shape (M, N).
    method : str, optional
        ``"max"`` (maximum intensity projection) or ``"sum"``.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``projected_image``: numpy.ndarray of shape (M, N); for ``max`` of the
        dtype of `image`, for ``sum`` of :func:`sum_dtype` (uint16 for a uint8
        stack of up to 257 planes, uint32 for a uint16 stack of 2 or more
        planes); ``figure``: Plotly JSON string, or ``""`` when `plot` is
        false.

    Raises
    ------
    ValueError
        If `image` is not a 2D or 3D unsigned integer array or `method` is
        unknown.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be a 3D (M, N, Z) array, got {image.ndim} dimensions")
    if not np.issubdtype(image.dtype, np.unsignedinteger):
        raise ValueError(f"image must be an intensity image (uint8 or uint16), got {image.dtype}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    stack = image if image.ndim == 3 else image[:, :, np.newaxis]
    if stack.shape[2] == 0:
        raise ValueError("image must have at least one z-plane")

    if method == "max":
        projected_image = stack.max(axis=2)
    else:
        projected_image = stack.sum(axis=2, dtype=sum_dtype(stack.dtype, stack.shape[2]))

    figure = ""
    if plot:
        figure = image_figure([(f"{method} projection", projected_image, "intensity")])
    return Output(projected_image, figure)
