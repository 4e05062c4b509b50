"""Remove objects whose shape feature lies outside a range.

Objects are kept when ``lower_threshold <= feature <= upper_threshold`` (an
open end when a threshold is None). Features (see
:func:`jtmodules._shapes.object_features`): ``area`` in pixels,
``eccentricity`` (0 for a circle, towards 1 for elongated objects),
``circularity`` (4π·area/perimeter², 1 for a disc) and ``convexity``
(area / convex hull area, 1 for convex objects).

A binary mask is filtered by its 8-connected components and stays a binary
mask; a label image keeps the labels of the remaining objects (use
``relabel`` for consecutive labels).
"""

from __future__ import annotations

import collections
import numbers

import numpy as np
from scipy import ndimage

from jtmodules._plots import image_figure
from jtmodules._shapes import FEATURES, binary_image, label_image, object_features

VERSION = "0.2.0"

Output = collections.namedtuple("Output", ["filtered_mask", "figure"])


def _bound(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number or None, got {value!r}")
    return float(value)


def main(mask, feature, lower_threshold=None, upper_threshold=None, plot=False):
    """Keep the objects of `mask` whose `feature` is within the thresholds.

    Parameters
    ----------
    mask : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary or label image of shape (M, N).
    feature : str
        ``"area"``, ``"eccentricity"``, ``"circularity"`` or ``"convexity"``.
    lower_threshold : float, optional
        Smallest value kept (no lower bound when None).
    upper_threshold : float, optional
        Largest value kept (no upper bound when None).
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``filtered_mask``: numpy.ndarray of shape (M, N), bool if `mask` is
        bool, else int32 with the remaining objects' original labels;
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `mask` is not a 2D bool or label image, `feature` is unknown or a
        threshold is not a number.
    """
    is_binary = np.asarray(mask).dtype == np.bool_
    if is_binary:
        binary = binary_image(mask, "mask")
        labels = np.zeros(binary.shape, np.int32)
        ndimage.label(binary, structure=np.ones((3, 3), bool), output=labels)
    else:
        labels = label_image(mask, "mask")
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {', '.join(FEATURES)}, got {feature!r}")
    lower = _bound(lower_threshold, "lower_threshold")
    upper = _bound(upper_threshold, "upper_threshold")

    values = object_features(labels, [feature])
    keep = np.ones(len(values["label"]), bool)
    if lower is not None:
        keep &= values[feature] >= lower
    if upper is not None:
        keep &= values[feature] <= upper
    lookup = np.zeros(int(labels.max(initial=0)) + 1, bool)
    lookup[values["label"][keep]] = True
    kept = lookup[labels]
    filtered_mask = kept if is_binary else np.where(kept, labels, 0).astype(np.int32)

    figure = ""
    if plot:
        kind = "mask" if is_binary else "label"
        figure = image_figure(
            [("objects", labels, "label"), (f"{feature} in range", filtered_mask, kind)]
        )
    return Output(filtered_mask, figure)
