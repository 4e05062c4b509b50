"""Separate clumps of touching objects (e.g. nuclei) at their concavities.

1. Selection. Objects count as clumps when their area is within
   ``[min_area, max_area]`` and they are both less convex (convexity =
   area / convex hull area) than ``max_convexity`` and less circular
   (4π·area/perimeter²) than ``max_circularity``: single nuclei are round
   and convex, two or more touching ones are not.
2. Cutting. The Euclidean distance transform of a clump has one maximum per
   roughly round part; maxima at least ``max(1, 0.15 * largest distance)``
   high above the saddles between them seed a watershed of the clump over
   the inverted sum of the (normalised) distance transform and intensity
   image, whose lines follow the necks between the parts (where the outline
   is concave) and dim intensity.
3. Checking. Parts smaller than ``min_cut_area`` are not kept as objects:
   with ``trimming`` they are removed (small debris that a cut leaves behind),
   otherwise they are merged back into the neighbouring part. A clump that
   would not give at least two parts of ``min_cut_area`` stays whole.

With ``selection_test_mode`` nothing is cut and the figure shows the objects
selected as clumps (or, with ``selection_test_show_remaining``, the objects
not selected), to tune the selection criteria. The output has consecutive
labels 1..n.
"""

from __future__ import annotations

import collections
import numbers

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import expand_labels, relabel_sequential, watershed

from jtmodules import _shapes
from jtmodules._plots import image_figure

VERSION = "0.3.0"

Output = collections.namedtuple("Output", ["separated_label_image", "figure"])

#: dynamic of a distance maximum needed to seed a part, relative to the largest distance
MIN_DYNAMIC = 0.15


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _normalised(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    low, high = float(values[inside].min()), float(values[inside].max())
    if high <= low:
        return np.zeros(values.shape, np.float64)
    return (values - low) / (high - low)


def cut_clump(clump: np.ndarray, intensity: np.ndarray, min_cut_area: float, trimming: bool):
    """Parts of one clump as labels 1..k (0 outside), or None when it stays whole.

    Parameters
    ----------
    clump : numpy.ndarray[numpy.bool_]
        The clump's pixels in a crop with at least one pixel of background
        around it.
    intensity : numpy.ndarray
        The intensity image in the same crop.
    min_cut_area : float
        Smallest area of a part.
    trimming : bool
        Remove smaller parts (True) or merge them into a neighbour (False).
    """
    distance = ndimage.distance_transform_edt(clump)
    h = max(1.0, MIN_DYNAMIC * float(distance.max()))
    seeds, n_seeds = ndimage.label(h_maxima(distance, h) & clump, np.ones((3, 3), bool))
    if n_seeds < 2:
        return None
    landscape = -(_normalised(distance, clump) + _normalised(intensity.astype(float), clump))
    parts = watershed(landscape, markers=seeds, mask=clump)
    areas = np.bincount(parts.ravel(), minlength=n_seeds + 1)
    big = areas >= min_cut_area
    big[0] = False
    if big.sum() < 2:
        return None
    small = ~big[parts] & clump
    if small.any():
        parts[small] = 0
        if not trimming:
            parts = np.where(
                clump, expand_labels(parts, distance=clump.shape[0] + clump.shape[1]), 0
            )
    return relabel_sequential(parts)[0]


def main(
    mask,
    intensity_image,
    min_cut_area=2000,
    max_convexity=0.92,
    max_circularity=0.7,
    min_area=5000,
    max_area=50000,
    selection_test_mode=False,
    selection_test_show_remaining=False,
    trimming=True,
    plot=False,
):
    """Cut the clumps among the objects of `mask` into their parts.

    Parameters
    ----------
    mask : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary image (objects are its 8-connected components) or label image
        of shape (M, N).
    intensity_image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Image of shape (M, N) in which the objects are bright (e.g. DAPI).
    min_cut_area : float, optional
        Smallest area in pixels of a part cut off a clump.
    max_convexity : float, optional
        Objects at least this convex are not clumps.
    max_circularity : float, optional
        Objects at least this circular are not clumps.
    min_area : float, optional
        Smallest area in pixels of a clump.
    max_area : float, optional
        Largest area in pixels of a clump.
    selection_test_mode : bool, optional
        Only select clumps and show them in the figure; nothing is cut.
    selection_test_show_remaining : bool, optional
        In selection test mode, show the objects not selected instead.
    trimming : bool, optional
        Remove parts smaller than `min_cut_area` instead of merging them into
        a neighbouring part.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``separated_label_image``: numpy.ndarray[numpy.int32] of shape (M, N),
        labels 1..n; ``figure``: Plotly JSON string, or ``""`` when `plot` is
        false.

    Raises
    ------
    ValueError
        If the images are not 2D mask/intensity images of the same shape or a
        criterion is not a number (flags not booleans).
    """
    raw = np.asarray(mask)
    if raw.dtype == np.bool_:
        binary = _shapes.binary_image(raw, "mask")
        labels = np.zeros(binary.shape, np.int32)
        ndimage.label(binary, structure=np.ones((3, 3), bool), output=labels)
    else:
        labels = _shapes.label_image(raw, "mask")
    image = _shapes.intensity_image(intensity_image, "intensity_image")
    _shapes.same_shape(labels, image, ("mask", "intensity_image"))
    min_cut_area = _number(min_cut_area, "min_cut_area")
    max_convexity = _number(max_convexity, "max_convexity")
    max_circularity = _number(max_circularity, "max_circularity")
    min_area = _number(min_area, "min_area")
    max_area = _number(max_area, "max_area")
    test_mode = _flag(selection_test_mode, "selection_test_mode")
    show_remaining = _flag(selection_test_show_remaining, "selection_test_show_remaining")
    trimming = _flag(trimming, "trimming")

    features = _shapes.object_features(labels, ["area", "circularity", "convexity"])
    selected = (
        (features["area"] >= min_area)
        & (features["area"] <= max_area)
        & (features["convexity"] < max_convexity)
        & (features["circularity"] < max_circularity)
    )
    clump_labels = features["label"][selected]

    result = labels.copy()
    if not test_mode and clump_labels.size:
        next_label = int(labels.max()) + 1
        slices = ndimage.find_objects(labels)
        for label in clump_labels:
            rows, cols = slices[label - 1]
            rows = slice(max(rows.start - 1, 0), rows.stop + 1)
            cols = slice(max(cols.start - 1, 0), cols.stop + 1)
            clump = labels[rows, cols] == label
            parts = cut_clump(clump, image[rows, cols], min_cut_area, trimming)
            if parts is None:
                continue
            window = result[rows, cols]
            window[clump] = np.where(parts[clump] > 0, parts[clump] + next_label - 1, 0)
            next_label += int(parts.max())
    separated_label_image = relabel_sequential(result)[0].astype(np.int32, copy=False)

    figure = ""
    if plot:
        if test_mode:
            lookup = np.zeros(int(labels.max(initial=0)) + 1, bool)
            lookup[clump_labels] = True
            shown = ~lookup[labels] & (labels > 0) if show_remaining else lookup[labels]
            title = "objects not selected" if show_remaining else "selected clumps"
            panels = [("image", image, "intensity"), (title, np.where(shown, labels, 0), "label")]
        else:
            panels = [
                ("image", image, "intensity"),
                ("objects", labels, "label"),
                ("separated objects", separated_label_image, "label"),
            ]
        figure = image_figure(panels)
    return Output(separated_label_image, figure)
