"""Segment secondary objects (e.g. cells) around primary objects (e.g. nuclei).

Every primary object is the seed of one secondary object, which grows from
it over the intensity image (e.g. a cytoplasmic stain) by a seeded watershed
and covers the foreground pixels closest to it:

1. Foreground. Pixels below ``min_threshold`` are background and pixels
   above ``max_threshold`` foreground. A pixel in between is decided locally
   (Bernsen's method): it is foreground if it is brighter than the mid-range
   ``(max + min) / 2`` of its neighbourhood (a square window about a cell's
   diameter wide, four typical primary object radii), where the neighbourhood
   has a contrast ``max - min`` of at least ``contrast_threshold``; in
   neighbourhoods of lower contrast (no edge nearby) it is foreground if it is
   above the middle of ``[min_threshold, max_threshold]``. With
   ``contrast_threshold`` 0 the foreground is simply the pixels above
   ``min_threshold``. Holes in the foreground are filled and the primary
   objects always count as foreground.
2. Watershed. The foreground is flooded from the primary objects over the
   inverted intensity image (rescaled to 0..1 between ``min_threshold`` and the
   bright end of the foreground), so that objects meet along dark lines. The
   distance to the nearest primary object is added to that landscape (one
   typical primary radius costs :data:`DISTANCE_COST` of the intensity range),
   which keeps a bright object from overflowing its dimmer neighbours where no
   dark line separates them. (A compact watershed does the same, but it took
   twice as long and matched simulated cells less well: mean IoU 0.87 against
   0.88-0.90.)

Each primary object thus gives exactly one secondary object with the same
label that contains it; foreground not connected to any primary object stays
background.
"""

from __future__ import annotations

import collections
import numbers

import cv2
import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from jtmodules import _shapes
from jtmodules._plots import image_figure

VERSION = "0.0.3"

Output = collections.namedtuple("Output", ["secondary_label_image", "figure"])

#: cost of one typical primary radius of distance from the nearest primary object,
#: as a fraction of the intensity range
DISTANCE_COST = 1.0


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def typical_radius(labels: np.ndarray) -> float:
    """Radius in pixels of a disc with the median area of the objects (at least 2)."""
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    if areas.size == 0:
        return 2.0
    return max(2.0, float(np.sqrt(np.median(areas) / np.pi)))


def foreground(
    values: np.ndarray, contrast: float, lower: float, upper: float, window: int
) -> np.ndarray:
    """Foreground mask by thresholds and local (Bernsen) contrast, see the module doc."""
    if contrast <= 0:
        return values > lower
    kernel = np.ones((window, window), np.uint8)
    local_max = cv2.dilate(values, kernel, borderType=cv2.BORDER_REPLICATE)
    local_min = cv2.erode(values, kernel, borderType=cv2.BORDER_REPLICATE)
    midrange = (local_max + local_min) * np.float32(0.5)
    # low-contrast neighbourhoods use the middle of the threshold band
    low = (local_max - local_min) < contrast
    midrange[low] = np.float32((lower + upper) / 2.0)
    return (values > upper) | ((values >= lower) & (values > midrange))


def watershed_by_component(
    landscape: np.ndarray, markers: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """``skimage.segmentation.watershed(landscape, markers, mask=mask)``, one
    connected component of `mask` at a time.

    Flooding never crosses from one component of the mask to another, so the
    result is the same, label for label; but the watershed's priority queue
    and arrays then grow with a component, not with the whole image (on a
    2160x2560 site a third of the time).

    Parameters
    ----------
    landscape : numpy.ndarray[numpy.float32]
        Image of shape (M, N) to flood, lowest first.
    markers : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the seeds (inside `mask`).
    mask : numpy.ndarray[bool]
        Pixels of shape (M, N) that may be labelled.

    Returns
    -------
    numpy.ndarray[numpy.int32]
        Label image of shape (M, N); 0 outside `mask` and in components
        without a seed.
    """
    components, _ = ndimage.label(mask)  # 4-connected, as the watershed floods
    labels = np.zeros(markers.shape, np.int32)
    for index, box in enumerate(ndimage.find_objects(components), 1):
        if box is None:
            continue
        inside = components[box] == index
        seeds = np.where(inside, markers[box], 0)
        if seeds.any():
            flooded = watershed(landscape[box], markers=seeds, mask=inside)
            labels[box][inside] = flooded[inside]
    return labels


def main(
    primary_label_image,
    intensity_image,
    contrast_threshold=5,
    min_threshold=125,
    max_threshold=140,
    plot=False,
):
    """Grow one secondary object from each primary object.

    Parameters
    ----------
    primary_label_image : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the primary objects (seeds).
    intensity_image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Image of shape (M, N) in which the secondary objects are bright,
        preferably smoothed.
    contrast_threshold : float, optional
        Smallest local contrast (max - min in a window) at which pixels between
        the thresholds are decided locally; 0 thresholds at `min_threshold`.
    min_threshold : float, optional
        Pixels darker than this are background.
    max_threshold : float, optional
        Pixels brighter than this are foreground.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``secondary_label_image``: numpy.ndarray[numpy.int32] of shape (M, N),
        one object per primary object with the primary's label;
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If the images are not 2D label/intensity images of the same shape, a
        threshold is not a number, `contrast_threshold` is negative or
        `min_threshold` exceeds `max_threshold`.
    """
    seeds = _shapes.label_image(primary_label_image, "primary_label_image")
    image = _shapes.intensity_image(intensity_image, "intensity_image")
    _shapes.same_shape(seeds, image, ("primary_label_image", "intensity_image"))
    contrast = _number(contrast_threshold, "contrast_threshold")
    lower = _number(min_threshold, "min_threshold")
    upper = _number(max_threshold, "max_threshold")
    if contrast < 0:
        raise ValueError(f"contrast_threshold must not be negative, got {contrast_threshold!r}")
    if lower > upper:
        raise ValueError(f"min_threshold {lower} is larger than max_threshold {upper}")

    values = image.astype(np.float32)
    radius = typical_radius(seeds)
    window = 2 * int(round(2 * radius)) + 1
    mask = foreground(values, contrast, lower, upper, window)
    mask = ndimage.binary_fill_holes(mask)
    mask |= seeds > 0

    if seeds.any():
        bright = float(np.percentile(values[mask], 99))
        scale = max(bright - lower, 1.0)
        landscape = np.clip((bright - values) / np.float32(scale), 0, 1)
        distance = cv2.distanceTransform((seeds == 0).astype(np.uint8), cv2.DIST_L2, 5)
        landscape += np.float32(DISTANCE_COST / radius) * distance
        secondary_label_image = watershed_by_component(landscape, seeds, mask)
    else:
        secondary_label_image = np.zeros(seeds.shape, np.int32)

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("image", image, "intensity"),
                ("foreground", mask, "mask"),
                ("secondary objects", secondary_label_image, "label"),
            ]
        )
    return Output(secondary_label_image, figure)
