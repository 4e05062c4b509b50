"""Combine two binary masks pixel by pixel with a logical operation.

``AND`` keeps pixels in both masks, ``OR`` pixels in either mask and
``EXCLUSIVE_OR`` pixels in exactly one of them (numpy's logical functions).
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules._plots import image_figure

VERSION = "0.0.2"

Output = collections.namedtuple("Output", ["combined_mask", "figure"])

#: logical operations by option name
OPERATIONS = {
    "AND": np.logical_and,
    "OR": np.logical_or,
    "EXCLUSIVE_OR": np.logical_xor,
}


def _check_mask(value, argument):
    value = np.asarray(value)
    if value.ndim != 2:
        raise ValueError(f"{argument} must be a 2D array, got {value.ndim} dimensions")
    if value.dtype != np.bool_:
        raise ValueError(f"{argument} must be a binary (bool) image, got {value.dtype}")
    return value


def main(mask_1, mask_2, logical_operation="AND", plot=False):
    """Combine `mask_1` and `mask_2` with `logical_operation`.

    Parameters
    ----------
    mask_1 : numpy.ndarray[numpy.bool_]
        Binary image of shape (M, N).
    mask_2 : numpy.ndarray[numpy.bool_]
        Binary image of shape (M, N).
    logical_operation : str, optional
        ``"AND"``, ``"OR"`` or ``"EXCLUSIVE_OR"``.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``combined_mask``: numpy.ndarray[numpy.bool_] of shape (M, N);
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If a mask is not a 2D bool array, the shapes differ, or
        `logical_operation` is unknown.
    """
    mask_1 = _check_mask(mask_1, "mask_1")
    mask_2 = _check_mask(mask_2, "mask_2")
    if mask_1.shape != mask_2.shape:
        raise ValueError(f"mask_2 has shape {mask_2.shape} but mask_1 has shape {mask_1.shape}")
    if logical_operation not in OPERATIONS:
        raise ValueError(
            f"logical_operation must be one of {', '.join(OPERATIONS)}, got {logical_operation!r}"
        )

    combined_mask = OPERATIONS[logical_operation](mask_1, mask_2)

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("mask 1", mask_1, "mask"),
                ("mask 2", mask_2, "mask"),
                (f"{logical_operation}", combined_mask, "mask"),
            ]
        )
    return Output(combined_mask, figure)
