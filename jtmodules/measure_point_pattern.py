"""Measure where point-like objects lie within their reference (parent) objects.

Each extract object (a point: spot, vesicle, nucleus, ...) belongs to the
reference object holding more than half of its pixels; points without one get
NaN. Distances are measured from the point's centroid, in pixels (group
``PointPattern``):

``absolute-distance-to-border``
    Euclidean distance from the centroid's pixel to the nearest pixel outside
    the reference object (OpenCV distance transform of the reference object).
``relative-distance-to-border``
    That distance divided by the largest one inside the reference object: 0
    at the border, 1 at the reference object's innermost point.
``absolute-distance-to-nearest-neighbor``
    Distance to the centroid of the nearest other point of the same
    reference object (NaN for a point alone in its reference object).
``mean-absolute-distance-to-neighbors``, ``std-absolute-distance-to-neighbors``
    Mean and standard deviation of the distances to all other points of the
    same reference object.
``relative-...-neighbor(s)``
    The neighbour distances divided by the reference object's equivalent
    diameter (that of the disc of the same area).

The values are given to the assign objects as described in
:mod:`jtmodules._measure` (typically the reference objects, with
``aggregate`` true, or the points themselves).
"""

from __future__ import annotations

import collections

import cv2
import numpy as np
from scipy.spatial.distance import cdist

from jtmodules import _measure

VERSION = "0.1.1"

Output = collections.namedtuple("Output", ["measurements", "figure"])

#: the features, in column order
FEATURES = (
    "absolute-distance-to-border",
    "relative-distance-to-border",
    "absolute-distance-to-nearest-neighbor",
    "relative-distance-to-nearest-neighbor",
    "mean-absolute-distance-to-neighbors",
    "mean-relative-distance-to-neighbors",
    "std-absolute-distance-to-neighbors",
    "std-relative-distance-to-neighbors",
)


def features(
    points: _measure.Objects, ref_image: np.ndarray, ref: _measure.Objects
) -> dict[str, np.ndarray]:
    """Point pattern features of each point (see the module doc)."""
    out = np.full((points.n, len(FEATURES)), np.nan)
    rows, columns = points.coordinates()
    centroids = np.column_stack([points.mean(rows), points.mean(columns)])
    where = ref.positions(_measure.parents(points, ref_image, ref))
    held = np.flatnonzero(where >= 0)
    held = held[np.argsort(where[held], kind="stable")]
    groups = np.split(held, np.flatnonzero(np.diff(where[held])) + 1) if held.size else []
    owners = np.array([where[g[0]] for g in groups], dtype=np.intp)
    diameters = np.sqrt(4 * ref.counts / np.pi)
    crops = ref.crops(ref_image, 1, which=owners)
    for group, (_, (top, left), mask) in zip(groups, crops, strict=True):
        distance = cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        spots = np.rint(centroids[group]).astype(np.intp) - (top, left)
        inside = np.all((spots >= 0) & (spots < mask.shape), axis=1)
        border = np.zeros(group.size)
        border[inside] = distance[spots[inside, 0], spots[inside, 1]]
        out[group, 0] = border
        out[group, 1] = border / max(float(distance.max()), 1.0)
        if group.size > 1:
            between = cdist(centroids[group], centroids[group])
            np.fill_diagonal(between, np.nan)
            scale = diameters[where[group[0]]]
            nearest = np.nanmin(between, axis=1)
            mean = np.nanmean(between, axis=1)
            std = np.nanstd(between, axis=1)
            out[group, 2:] = np.column_stack(
                [nearest, nearest / scale, mean, mean / scale, std, std / scale]
            )
    return {f"PointPattern_{name}": out[:, j] for j, name in enumerate(FEATURES)}


def main(extract_objects, ref_objects, assign_objects, aggregate=False, plot=False):
    """Measure point pattern features of `extract_objects` in `ref_objects`.

    Parameters
    ----------
    extract_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) (0 is background) of the points measured.
    ref_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the objects the points lie in (e.g. cells).
    assign_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the objects that get the values.
    aggregate : bool, optional
        Summarise several points per assign object (``Mean_``, ``Std_``,
        ``Sum_`` columns and ``Count``) instead of taking the one point inside.
    plot : bool, optional
        Whether to create a figure (the assign objects and their first feature).

    Returns
    -------
    Output
        ``measurements``: pandas.DataFrame indexed by the labels of
        `assign_objects` (``label``), one float64 column per feature;
        ``figure``: Plotly JSON, or ``""`` without `plot`.

    Raises
    ------
    ValueError
        For bad inputs, or without `aggregate` when an assign object holds more
        than one point.
    """
    extract = _measure.check_labels(extract_objects, "extract_objects")
    ref_image = _measure.check_labels(ref_objects, "ref_objects")
    _measure.check_shape(ref_image, "ref_objects", extract.shape)
    target = _measure.check_labels(assign_objects, "assign_objects")
    _measure.check_shape(target, "assign_objects", extract.shape)
    aggregate = _measure.check_flag(aggregate, "aggregate")
    points = _measure.Objects.of(extract)
    values = features(points, ref_image, _measure.Objects.of(ref_image))
    measurements = _measure.assign(
        _measure.frame(values, points), points, extract, target, aggregate
    )
    figure = _measure.figure(measurements, target) if plot else ""
    return Output(measurements, figure)
