"""Measure the size and shape of objects.

Features of each extract object (pixel units, coordinates of the site image):

``Morphology_Local_Centroid_x``, ``Morphology_Local_Centroid_y``
    Centroid column and row in the site image.
``Morphology_Area``
    Number of pixels.
``Morphology_Perimeter``
    Length of the outline (:func:`skimage.measure.perimeter`, 4-connected).
``Morphology_Eccentricity``, ``Morphology_Major_Axis_Length``, ``Morphology_Minor_Axis_Length``
    Of the ellipse with the object's second central moments (as
    :func:`skimage.measure.regionprops`: axes are 4·sqrt(eigenvalue)).
``Morphology_Extent``
    Area / bounding box area.
``Morphology_Convexity``
    Area / area of the convex hull (pixels whose centres lie in the hull of
    the object's pixel centres; OpenCV), 1 for convex objects.
``Morphology_Circularity``
    4π·area / perimeter² (1 for a disc; NaN for a zero perimeter).
``Morphology_Roundness``
    :func:`mahotas.features.roundness`: (perimeter pixels)² / (4π·area).
``Morphology_Elongation``
    (major − minor axis length) / major axis length.
``Morphology_Equivalent_Diameter``
    Diameter of the disc of the same area, sqrt(4·area/π).
``Morphology_Maximum_Radius``, ``Morphology_Mean_Radius``
    Maximum and mean over the object's pixels of the Euclidean distance to
    the nearest pixel outside the object (OpenCV distance transform).
``Morphology_Zernike-<n>-<m>`` (with ``measure_zernike``)
    Magnitudes of the Zernike moments up to degree 12 (49 values,
    :func:`mahotas.features.zernike_moments`) of the object mask, centred on
    the centroid, on the disc of the largest centroid-to-pixel distance
    (so invariant to rotation, translation and scale).

Centroids, areas and moments are computed for all objects at once from the
object pixels; perimeter, convex hull, radii and roundness per object on its
bounding box. The values are given to the assign objects as described in
:mod:`jtmodules._measure`.
"""

from __future__ import annotations

import collections

import cv2
import mahotas as mh
import numpy as np
from skimage.measure import perimeter

from jtmodules import _measure

VERSION = "0.2.0"

Output = collections.namedtuple("Output", ["measurements", "figure"])

#: highest degree of the Zernike moments
ZERNIKE_DEGREE = 12

#: the features without Zernike moments, in column order
FEATURES = (
    "Local_Centroid_x",
    "Local_Centroid_y",
    "Area",
    "Perimeter",
    "Eccentricity",
    "Extent",
    "Convexity",
    "Circularity",
    "Roundness",
    "Elongation",
    "Equivalent_Diameter",
    "Major_Axis_Length",
    "Minor_Axis_Length",
    "Maximum_Radius",
    "Mean_Radius",
)


def zernike_names(degree: int = ZERNIKE_DEGREE) -> list[str]:
    """Names ``Zernike-<n>-<m>`` in the order of :func:`mahotas.features.zernike_moments`."""
    return [f"Zernike-{n}-{m}" for n in range(degree + 1) for m in range(n + 1) if (n - m) % 2 == 0]


def _convex_area(mask8: np.ndarray) -> int:
    contours, _ = cv2.findContours(mask8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    filled = np.zeros_like(mask8)
    cv2.fillConvexPoly(filled, hull, 1)
    return int(np.count_nonzero(filled | mask8))


def features(
    objects: _measure.Objects, label_image: np.ndarray, zernike: bool = False
) -> dict[str, np.ndarray]:
    """Morphology features of each object (name without group prefix to values (n,))."""
    n = objects.n
    area = objects.counts.astype(np.float64)
    rows, columns = objects.coordinates()
    cy, cx = objects.mean(rows), objects.mean(columns)
    dy, dx = rows - cy[objects.index], columns - cx[objects.index]
    myy, mxx, mxy = objects.mean(dy * dy), objects.mean(dx * dx), objects.mean(dy * dx)
    half_trace = (myy + mxx) / 2
    spread = np.sqrt(((myy - mxx) / 2) ** 2 + mxy**2)
    first, second = half_trace + spread, np.maximum(half_trace - spread, 0.0)
    major, minor = 4 * np.sqrt(first), 4 * np.sqrt(second)
    with np.errstate(invalid="ignore", divide="ignore"):
        eccentricity = np.where(first > 0, np.sqrt(1 - second / first), 0.0)
        elongation = np.where(major > 0, (major - minor) / major, np.nan)
    boxes = objects.boxes(label_image)
    extent = area / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))

    outline = np.zeros(n)
    convex = np.zeros(n)
    roundness = np.zeros(n)
    max_radius = np.zeros(n)
    mean_radius = np.zeros(n)
    names = zernike_names() if zernike else []
    moments = np.full((n, len(names)), np.nan)
    for i, (top, left), mask in objects.crops(label_image, 1, boxes):
        mask8 = mask.view(np.uint8)
        outline[i] = perimeter(mask, 4)
        convex[i] = _convex_area(mask8)
        roundness[i] = mh.features.roundness(mask)
        distance = cv2.distanceTransform(mask8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        max_radius[i] = distance.max()
        mean_radius[i] = distance.sum() / area[i]
        if zernike:
            centre = (cy[i] - top, cx[i] - left)
            r, c = np.nonzero(mask)
            radius = max(float(np.sqrt(((r - centre[0]) ** 2 + (c - centre[1]) ** 2).max())), 1.0)
            moments[i] = mh.features.zernike_moments(
                mask, radius * (1 + 1e-9), degree=ZERNIKE_DEGREE, cm=centre
            )
    with np.errstate(invalid="ignore", divide="ignore"):
        circularity = np.where(outline > 0, 4 * np.pi * area / outline**2, np.nan)
    values = {
        "Local_Centroid_x": cx,
        "Local_Centroid_y": cy,
        "Area": area,
        "Perimeter": outline,
        "Eccentricity": eccentricity,
        "Extent": extent,
        "Convexity": area / np.maximum(convex, 1),
        "Circularity": circularity,
        "Roundness": roundness,
        "Elongation": elongation,
        "Equivalent_Diameter": np.sqrt(4 * area / np.pi),
        "Major_Axis_Length": major,
        "Minor_Axis_Length": minor,
        "Maximum_Radius": max_radius,
        "Mean_Radius": mean_radius,
    }
    values.update({name: moments[:, j] for j, name in enumerate(names)})
    return {f"Morphology_{name}": v for name, v in values.items()}


def main(extract_objects, assign_objects, aggregate=False, measure_zernike=False, plot=False):
    """Measure morphology features of `extract_objects` and assign them to `assign_objects`.

    Parameters
    ----------
    extract_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) (0 is background) of the objects measured.
    assign_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the objects that get the values.
    aggregate : bool, optional
        Summarise several extract objects per assign object (``Mean_``,
        ``Std_``, ``Sum_`` columns and ``Count``) instead of taking the one
        extract object inside.
    measure_zernike : bool, optional
        Also measure the Zernike moments up to degree 12 (49 features; slower).
    plot : bool, optional
        Whether to create a figure (the assign objects and their area).

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
        than one extract object.
    """
    extract, target = _measure.check_objects(extract_objects, assign_objects)
    aggregate = _measure.check_flag(aggregate, "aggregate")
    zernike = _measure.check_flag(measure_zernike, "measure_zernike")
    objects = _measure.Objects.of(extract)
    values = _measure.frame(features(objects, extract, zernike), objects)
    measurements = _measure.assign(values, objects, extract, target, aggregate)
    figure = ""
    if plot:
        column = "Mean_Morphology_Area" if aggregate else "Morphology_Area"
        figure = _measure.figure(measurements, target, column)
    return Output(measurements, figure)
